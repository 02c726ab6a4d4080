"""The three workflows, run for real by act on this host against the local deploy target.

Each case checks the server (which version answers, its release ledger), the GitHub stand-in
(what the program declared, the pull-request comment) and the webhook sink (the Slack message),
not only the log. act runs the jobs on the host (`-P ubuntu-latest=-self-hosted`); the workflows
deploy the stack named by the repository variable PULUMI_STACK instead of `production`, whose
file is committed in the repository as production's is; the test jobs run PYTEST_SELECTION, a
small real subset.

The cases are one history of one stack, in order (each starts from what the previous left):
push v1 -> push of a broken v2 (rolled back by release.sh) -> a pull request -> push v3, then a
rollback to the last good version (v1) -> a rollback to the latest backup (v3). One stack keeps
the whole run bounded (tools/test.sh). Not run here: a rollback by tag (the same rollback.py
path as by last-good, with the tag given), two runs at once (act does not implement
`concurrency:`; the stack-lock wait is covered by tests/scripts on retry-on-stack-lock.sh).
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from local.stack import MachineValues
from local.target import (
    DeployTarget,
    HttpProbe,
    LocalServer,
    create_deploy_target,
    destroy_deploy_target,
)
from tests.e2e.conftest import stack_config
from tests.e2e.webhook_sink import WebhookSink
from tests.workflows.act.harness import (
    ACTOR,
    DEPLOY,
    OWNER,
    PYTEST_SELECTION,
    REPOSITORY,
    ROLLBACK,
    TESTS,
    ActResult,
    Repository,
    Services,
    Stack,
    StandInWithComments,
    make_stack,
    pull_request_payload,
    push_payload,
    run_act,
    runner_environment,
)

# The toolchain the runner has (tests/e2e/conftest.py builds what the collected modules name):
# the deploy workflow builds the image (docker) and declares GitHub's side (github).
PULUMI_PLUGINS = ("command", "docker", "github")
REVIEWER = [{"type": "User", "id": 1234567}]


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("act")


@pytest.fixture(scope="module")
def services(work: Path) -> Iterator[Services]:
    github = StandInWithComments(OWNER, REPOSITORY, token=f"ghp_act{secrets.token_hex(16)}").start()
    slack = WebhookSink(work).start()
    yield Services(github, slack, slack.url(f"/services/T0ACT/B0ACT/{secrets.token_hex(8)}"))
    github.stop()
    slack.stop()


@pytest.fixture(scope="module")
def target(local_server: LocalServer) -> Iterator[DeployTarget]:
    made = create_deploy_target(local_server, f"act-{secrets.token_hex(2)}")
    yield made
    destroy_deploy_target(local_server, made)


@pytest.fixture(scope="module")
def act_stack(
    work: Path,
    pulumi_env: dict[str, str],
    local_server: LocalServer,
    target: DeployTarget,
    services: Services,
) -> Iterator[Stack]:
    repository = Repository.create(work / "repo")
    values = MachineValues(
        host_key=local_server.host_public_key,
        ssh_private_key=local_server.private_key_path.read_text(),
        registry_user=local_server.registry_user,
        registry_password=local_server.registry_password,
        env_file_content=f"APP_SECRET=act-{secrets.token_hex(8)}\n",
    )
    stack = make_stack(repository, pulumi_env, values, stack_config(local_server, target), services)
    yield stack
    stack.pulumi.remove()


@dataclass
class History:
    """What the cases leave for the next ones: version -> the commit that carried it."""

    commits: dict[str, str] = field(default_factory=dict)


class Runner:
    """act runs of one stack's repository, with its secrets and variables."""

    def __init__(
        self, stack: Stack, target: DeployTarget, pulumi_env: dict[str, str],
        server: LocalServer, services: Services, work: Path,
    ) -> None:  # fmt: skip
        self.stack = stack
        self.target = target
        self.server = server
        self.services = services
        self.work = work
        self.history = History()
        self.env = {
            **runner_environment(pulumi_env, services.slack.ca_bundle, work / "docker-config"),
            "GITHUB_API_URL": services.github.base_url.rstrip("/") + "/api/v3",
        }
        self.deploy_secrets = {
            "PULUMI_CONFIG_PASSPHRASE": pulumi_env["PULUMI_CONFIG_PASSPHRASE"],
            "PULUMI_GITHUB_TOKEN": services.github.token,
            "SLACK_WEBHOOK_URL": services.slack_url,
            # The workflow logs in to the stack's registry as github.actor with GITHUB_TOKEN:
            # here the local registry's push user and password.
            "GITHUB_TOKEN": server.registry_password,
        }
        self.vars = {
            "PULUMI_BACKEND_URL": pulumi_env["PULUMI_BACKEND_URL"],
            "PYTEST_SELECTION": PYTEST_SELECTION,
        }

    def push(self, version: str, mode: str = "ok", *, log_name: str = "") -> tuple[str, ActResult]:
        repo = self.stack.repository
        repo.set_app(version, mode)
        message = f"app: {version} ({mode})"
        sha = repo.commit(message)
        self.history.commits[version] = sha
        result = run_act(
            self.stack, "push", DEPLOY, push_payload(repo, sha, message),
            secrets_=self.deploy_secrets, vars_=self.vars, env=self.env, work=self.work,
            log_name=log_name,
        )  # fmt: skip
        return sha, result

    def rollback(self, log_name: str = "", **inputs: str) -> ActResult:
        payload = {"inputs": inputs, "ref": "refs/heads/main"}
        return run_act(
            self.stack, "workflow_dispatch", ROLLBACK, payload,
            secrets_=self.deploy_secrets, vars_=self.vars, env=self.env, inputs=inputs,
            work=self.work, log_name=log_name,
        )  # fmt: skip

    def pull_request(self, number: int, version: str) -> tuple[str, ActResult]:
        """A pull request from branch `pr-<number>` changing the app to `version`; the run
        sees the branch's files (act runs the checkout it is given); main is checked out
        again afterwards, unchanged."""
        repo = self.stack.repository
        base = repo.git("rev-parse", "HEAD")
        repo.git("checkout", "-q", "-b", f"pr-{number}")
        try:
            repo.set_app(version)
            head = repo.commit(f"app: {version} (pull request)")
            # PRs get no deploy secret: only the token that comments (the stand-in's).
            result = run_act(
                self.stack, "pull_request", TESTS,
                pull_request_payload(number, base, head, f"pr-{number}"),
                secrets_={"GITHUB_TOKEN": self.services.github.token}, vars_=self.vars,
                env=self.env, work=self.work,
            )  # fmt: skip
        finally:
            repo.git("checkout", "-q", "main")
        return head, result

    def ledger(self) -> list[dict[str, Any]]:
        """The server's release ledger (what rollback.py reads)."""
        deploy_dir = self.target.deploy_dir
        proc = self.server.ssh(f"cat {deploy_dir}/.deploy/releases.jsonl", check=True)
        return [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]


@pytest.fixture(scope="module")
def runner(
    act_stack: Stack, target: DeployTarget, pulumi_env: dict[str, str],
    local_server: LocalServer, services: Services, work: Path,
) -> Runner:  # fmt: skip
    return Runner(act_stack, target, pulumi_env, local_server, services, work)


def served(http: HttpProbe, stack: Stack) -> str:
    """The version that answers: the commit SHA (the image's tag, its VERSION build arg)."""
    status, body = http.get(stack.health_url)
    assert status == 200, f"health answered {status}: {body}"
    return str(json.loads(body)["version"])


def slack_texts(services: Services) -> list[str]:
    texts = []
    for post in services.slack.posts:
        try:
            texts.append(str(json.loads(post.body).get("text", post.body)))
        except ValueError:
            texts.append(post.body)
    return texts


def assert_jobs(result: ActResult, expected: dict[str, str]) -> None:
    got = {name: result.job(name) for name in expected}
    assert got == expected, f"jobs {result.jobs}; log tail:\n{result.log[-8000:]}"


def deployed_tag(runner: Runner) -> str:
    """The tag of the image the stack deployed (`<repository>:<tag>@sha256:<digest>`)."""
    return str(runner.stack.pulumi.outputs()["image"]).split("@")[0].rsplit(":", 1)[-1]


DEPLOYED = {"Lint and test": "succeeded", "Preview the deploy": "succeeded",
            "Deploy": "succeeded", "Smoke test": "succeeded"}  # fmt: skip


def test_push_to_main_previews_then_applies_that_plan_and_the_new_version_serves(
    runner: Runner, http: HttpProbe
) -> None:
    sha, result = runner.push("act-1")
    assert_jobs(result, DEPLOYED)
    assert "Notify failure" not in result.jobs and result.returncode == 0
    assert served(http, runner.stack) == runner.history.commits["act-1"]
    assert deployed_tag(runner) == sha
    # The test job ran real tests (the bounded selection), the preview job the real diff
    # saved as a plan, the deploy job that plan.
    assert "running only the selected tests" in result.log
    assert "passed" in result.log
    assert "NO APPROVAL REQUIRED" not in result.log  # the stack names a reviewer
    assert "Update plan:" in result.log
    assert "--plan" in result.log
    # What the program declared on GitHub (the stand-in), from the deploy job.
    github = runner.services.github
    assert sorted(github.secrets) == ["SLACK_WEBHOOK_URL"]
    assert github.decrypt("SLACK_WEBHOOK_URL") == runner.services.slack_url
    assert sorted(github.environments) == ["production", "production-preview"]
    assert github.environments["production"].reviewers == REVIEWER
    assert github.unhandled == []
    # The program's own success message reached the webhook; no failure message.
    texts = slack_texts(runner.services)
    assert any("success" in text for text in texts), texts
    assert not any("MCP production" in text for text in texts), texts
    # The server's ledger: this commit's image served, deployed by the workflow's actor.
    last = runner.ledger()[-1]
    assert sha in json.dumps(last) and ACTOR in json.dumps(last), last


def test_a_broken_push_fails_the_deploy_keeps_the_previous_version_and_tells_slack(
    runner: Runner, http: HttpProbe
) -> None:
    before = len(runner.services.slack.posts)
    sha, result = runner.push("act-2", mode="error500")
    assert_jobs(result, {"Lint and test": "succeeded", "Preview the deploy": "succeeded",
                         "Deploy": "failed", "Notify failure": "succeeded"})  # fmt: skip
    assert result.returncode != 0
    assert "Smoke test" not in result.jobs  # skipped: the deploy failed
    assert served(http, runner.stack) == runner.history.commits["act-1"]
    texts = slack_texts(runner.services)[before:]
    failure = [t for t in texts if "MCP production" in t]
    assert len(failure) == 1, texts
    assert f"deploy of {sha[:7]} by {ACTOR} failed its health check" in failure[0]
    assert "AUTOMATICALLY ROLLED BACK; the previous version is serving" in failure[0]
    assert f"/{OWNER}/{REPOSITORY}/actions/runs/" in failure[0]


def test_a_pull_request_lints_tests_and_comments_its_preview(
    runner: Runner, http: HttpProbe
) -> None:
    head, result = runner.pull_request(7, "act-pr")
    assert_jobs(result, {"Lint": "succeeded", "Test": "succeeded", "Pulumi preview": "succeeded"})
    assert result.returncode == 0
    comments = runner.services.github.comments.get(7, [])
    assert len(comments) == 1, comments
    body = comments[0]["body"]
    # The throwaway stack's preview: the whole program, built from the PR's head commit.
    assert "pr-preview" in body, body
    for resource in ("app-build", "server-release", "github-environment"):
        assert resource in body, body
    assert "to create" in body, body
    assert runner.services.github.unhandled == []
    # Nothing of it reached the server or the production stack.
    assert served(http, runner.stack) == runner.history.commits["act-1"]
    assert head not in json.dumps(runner.ledger())
    assert deployed_tag(runner) == runner.history.commits["act-1"]


def test_rollback_to_the_last_good_version(runner: Runner, http: HttpProbe) -> None:
    """After a deploy of act-3, the last good version before it is act-1 (act-2 failed its
    health check): rollback.py reads that from the server's release ledger over SSH, marks
    act-3 as rolled back from, and act-1 serves again."""
    sha3, pushed = runner.push("act-3")
    assert_jobs(pushed, DEPLOYED)
    assert served(http, runner.stack) == sha3
    result = runner.rollback(log_name="rollback-last-good", last_good="true")
    assert_jobs(result, {"Rollback": "succeeded", "Smoke test": "succeeded",
                         "Notify": "succeeded"})  # fmt: skip
    assert result.returncode == 0
    assert served(http, runner.stack) == runner.history.commits["act-1"]
    assert deployed_tag(runner) == runner.history.commits["act-1"]
    marked = [e for e in runner.ledger() if e.get("event") == "rolled-back-from"]
    assert marked and sha3 in str(marked[-1].get("image")), runner.ledger()[-3:]
    text = slack_texts(runner.services)[-1]
    assert f"ROLLED BACK by {ACTOR}" in text, text


def test_rollback_to_the_latest_backup(runner: Runner, http: HttpProbe) -> None:
    """The latest backup was taken by the previous rollback, before it moved away from act-3:
    restoring it brings act-3 back."""
    result = runner.rollback(log_name="rollback-backup", backup_timestamp="latest")
    assert_jobs(result, {"Rollback": "succeeded", "Smoke test": "succeeded",
                         "Notify": "succeeded"})  # fmt: skip
    assert result.returncode == 0
    assert served(http, runner.stack) == runner.history.commits["act-3"]
    assert "to latest" in slack_texts(runner.services)[-1]
