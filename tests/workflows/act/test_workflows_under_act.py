"""The three workflows, run for real by act on this host against the local deploy target.

Each case checks the server (which version answers, its release ledger), the GitHub stand-in
(what the program declared, the pull-request comment) and the webhook sink (the Slack message),
not only the log. act runs the jobs on the host (`-P ubuntu-latest=-self-hosted`); the workflows
deploy the stack named by the repository variable PULUMI_STACK instead of `production`, whose
file is committed in the repository as production's is; the test jobs run PYTEST_SELECTION, a
small real subset.

The cases are one history of one stack, in order (each starts from what the previous left):
push v1 -> two pushes at once, v1a and v1b on top of it: v1b's deploy waits for the stack lock
v1a's holds, then deploys (v1b serves, and is "act-1" from then on) -> push of a broken v2
(rolled back by release.sh) -> a pull request -> push v3, then a rollback to the last good
version (v1b) -> a rollback to the latest backup (v3) -> a rollback by a prefix of v1b's tag.
One stack keeps the whole run bounded (tools/test.sh).

Two runs at once prove only the stack-lock half of "deploys never overlap": on GitHub,
`concurrency: deploy-production` queues the second run before any of its jobs starts (one
pending run per group, a newer push replacing the pending one, nothing cancelled half-way);
act does not implement `concurrency:` (both runs go at once here). The stack lock is what also
keeps a rollback (its own concurrency group) and a deploy apart on GitHub.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
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
from tests.e2e.conftest import HEALTH_ATTEMPTS, HEALTH_TIMEOUT_S, stack_config
from tests.workflows.act.harness import (
    ACTOR,
    DEPLOY,
    OWNER,
    PYTEST_SELECTION,
    REPOSITORY,
    ROLLBACK,
    TESTS,
    ActResult,
    ActRun,
    Repository,
    Services,
    Stack,
    make_stack,
    pull_request_payload,
    push_payload,
    run_act,
    runner_environment,
    stack_locks,
    start_act,
)

# The toolchain the runner has (tests/e2e/conftest.py builds what the collected modules name):
# the deploy workflow builds the image (docker) and declares GitHub's side (github).
PULUMI_PLUGINS = ("command", "docker", "github")
REVIEWER = [{"type": "User", "id": 1234567}]


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
            # No staging stack here: production builds each push itself, the path a hotfix
            # takes (test_staging_under_act.py runs the staging path).
            "PULUMI_STAGING_STACK": "none",
        }

    def push(self, version: str, mode: str = "ok", *, log_name: str = "") -> tuple[str, ActResult]:
        sha, run = self.start_push(version, mode, log_name=log_name)
        return sha, run.wait()

    def start_push(
        self, version: str, mode: str = "ok", *, log_name: str = "", stack: Stack | None = None
    ) -> tuple[str, ActRun]:
        """The next commit, `version` in `mode`, pushed: its deploy run started, not awaited.
        `stack`: the same stack from another checkout (`Repository.clone`)."""
        stack = stack or self.stack
        repo = stack.repository
        repo.set_app(version, mode)
        message = f"app: {version} ({mode})"
        sha = repo.commit(message)
        self.history.commits[version] = sha
        run = start_act(
            stack, "push", DEPLOY, push_payload(repo, sha, message),
            secrets_=self.deploy_secrets, vars_=self.vars, env=self.env, work=self.work,
            log_name=log_name or version,
        )  # fmt: skip
        return sha, run

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
        proc = self.server.ssh(
            f"cat {deploy_dir}/.deploy/releases.jsonl 2>/dev/null || true", check=True
        )
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
    assert result.job("Notify") == "succeeded" and result.returncode == 0
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
    assert github.secrets == {}  # the notifier reads the webhook from the stack itself
    assert sorted(github.environments) == ["production", "production-preview"]
    assert github.environments["production"].reviewers == REVIEWER
    assert github.unhandled == []
    # One message, from the notify job, after the smoke test: success, with what serves now
    # (read from the server) and the backup taken before it.
    texts = slack_texts(runner.services)
    assert len(texts) == 1, texts
    assert f"{sha[:7]} by {ACTOR} is deployed and passed the smoke test" in texts[0], texts
    assert f"/{runner.stack.image_repository}:{sha}@sha256:" in texts[0], texts
    assert "What failed: nothing" in texts[0] and "Backup: 20" in texts[0], texts
    # The server's ledger: this commit's image served, deployed by the workflow's actor.
    last = runner.ledger()[-1]
    assert sha in json.dumps(last) and ACTOR in json.dumps(last), last


def test_two_pushes_at_once_the_second_waits_for_the_first_s_stack_lock(
    runner: Runner, http: HttpProbe, pulumi_env: dict[str, str], work: Path
) -> None:
    """Two pushes to main, act-1a then act-1b on top of it, run at once: both preview the
    stack as push v1 left it, then act-1a's deploy takes the Pulumi stack lock, and act-1b's
    `pulumi up --plan` waits for it (retry-on-stack-lock.sh) and applies its plan once act-1a
    has released; both succeed, in order, and act-1b serves at the end. From here on, act-1b
    is "act-1" for the later cases: the good version that serves before the broken push.

    On GitHub, `concurrency: deploy-production` queues the second run before any of its jobs
    starts (one pending run per group; a newer push replaces the pending one; nothing is
    cancelled half-way). act does not implement `concurrency:`, so only the stack-lock half is
    proven here: the one that also keeps a rollback (its own group) and a deploy apart on
    GitHub, where a rollback can start between a deploy's preview and its `up`, as act-1a
    does here. The order is staged, not raced: each run is held (SIGSTOP to act) once its
    preview has succeeded; act-1a goes on until its lock file is in the file backend, then
    act-1b. act-1a is the sample app's `gated` mode: its health check passes only once this
    test opens it, after act-1b has logged its wait, so the lock is held exactly as long as
    needed (the stack's health deadline is raised to 300 s for these two commits, and set
    back after). act-1b's commit is made in a clone of the repository: act copies the working
    tree into each job when it starts, and act-1a's deploy job has not started then.

    A preview taken *while* another update holds the stack is not staged: Pulumi previews take
    no lock (on any backend), so that plan describes a half-applied state and the `up --plan`
    that waited fails on it (seen under act: "expected resource operations ... but none were
    seen", after the release had run). Nor after a rollback: a rollback deploys a pinned image
    without building, so the build's resources are gone from the state the previews read, and
    the second plan's "create" of them is a "replace" once the first push has made them again
    ("create-replacement is not allowed by the plan"): hence this case right after push v1."""
    stack = runner.stack
    stack.pulumi.set_config("mcp:app.healthAttempts", "150")
    stack.pulumi.set_config("mcp:app.healthTimeoutSeconds", "300")  # committed with act-1a
    before = len(runner.ledger())
    sha4, first = runner.start_push("act-1a", "gated")
    runs = [first]
    try:
        clone = stack.repository.clone(work / "repo-second-push")
        sha5, second = runner.start_push("act-1b", stack=replace(stack, repository=clone))
        runs.append(second)
        hold_after_preview(runs, 600)
        first.resume()
        wait_for("act-1a's stack lock", lambda: bool(stack_locks(pulumi_env, stack)), 300, first)
        second.resume()
        wait_for("act-1b waiting for the lock", lambda: LOCK_WAIT in second.log(), 300,
                 first, second)  # fmt: skip
        assert stack_locks(pulumi_env, stack), "the lock went before act-1b waited for it"
        assert first.running(), first.log()[-6000:]
        open_the_gate(http, stack, sha4)
        one, two = first.wait(), second.wait()
    finally:
        for run in runs:
            run.stop()
    assert_jobs(one, DEPLOYED)
    assert_jobs(two, DEPLOYED)
    assert one.returncode == 0 and two.returncode == 0
    assert LOCK_WAIT not in one.log
    assert served(http, stack) == sha5
    assert deployed_tag(runner) == sha5
    released = [e for e in runner.ledger()[before:] if e.get("event") == "served"]
    order = [sha for e in released for sha in (sha4, sha5) if sha in str(e.get("image"))]
    assert order == [sha4, sha5], released
    assert released[0]["at"] < released[1]["at"], released
    # The next cases: act-1b is their act-1, and the next push has the usual health deadline
    # again (the broken push fails its health check within it).
    runner.history.commits["act-1"] = sha5
    stack.repository.git("pull", "-q", "--ff-only", str(clone.path), "main")  # main is act-1b
    stack.pulumi.set_config("mcp:app.healthAttempts", str(HEALTH_ATTEMPTS))
    stack.pulumi.set_config("mcp:app.healthTimeoutSeconds", str(HEALTH_TIMEOUT_S))


def test_a_broken_push_fails_the_deploy_keeps_the_previous_version_and_tells_slack(
    runner: Runner, http: HttpProbe
) -> None:
    before = len(runner.services.slack.posts)
    sha, result = runner.push("act-2", mode="error500")
    assert_jobs(result, {"Lint and test": "succeeded", "Preview the deploy": "succeeded",
                         "Deploy": "failed", "Notify": "succeeded"})  # fmt: skip
    assert result.returncode != 0
    assert "Smoke test" not in result.jobs  # skipped: the deploy failed
    assert served(http, runner.stack) == runner.history.commits["act-1"]
    texts = slack_texts(runner.services)[before:]
    assert len(texts) == 1, texts
    (failure,) = texts
    assert f"deploy of {sha[:7]} by {ACTOR} failed its health check" in failure
    assert "AUTOMATICALLY ROLLED BACK; the previous version is serving" in failure
    assert f"/{OWNER}/{REPOSITORY}/actions/runs/" in failure
    # The facts, read from the server: what failed (the release's own reason), what serves
    # (act-1, healthy) and the backup the automatic rollback restored.
    lines = dict(line.split(": ", 1) for line in failure.splitlines()[1:])
    assert sha in lines["What failed"] and "release.sh exit 10" in lines["What failed"], failure
    assert runner.history.commits["act-1"] in lines["Serving now"], failure
    assert "(HEALTHY: " in lines["Serving now"], failure
    assert "restored by the automatic rollback" in lines["Backup"], failure


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


def test_rollback_by_a_tag_prefix(runner: Runner, http: HttpProbe) -> None:
    """After the backup restore, act-3 serves. `image_tag` names act-1 by the first 12
    characters of its tag (the commit SHA, as someone copies it from the ledger or
    `rollback.py --list`): rollback.py resolves that prefix in the server's ledger to the one
    image that served under it, its digest, and act-1 serves again, though the backup restore
    marked it rolled back from (last_good would never pick it: a tag is an explicit choice)."""
    sha1, sha3 = runner.history.commits["act-1"], runner.history.commits["act-3"]
    assert served(http, runner.stack) == sha3
    prefix = sha1[:12]
    result = runner.rollback(log_name="rollback-tag", image_tag=prefix)
    assert_jobs(result, {"Rollback": "succeeded", "Smoke test": "succeeded",
                         "Notify": "succeeded"})  # fmt: skip
    assert result.returncode == 0
    assert served(http, runner.stack) == sha1
    assert deployed_tag(runner) == sha1  # the whole tag, from the ledger
    ledger = runner.ledger()
    last_served = [e for e in ledger if e.get("event") == "served"][-1]
    assert sha1 in str(last_served.get("image")) and last_served.get("digest"), last_served
    assert ACTOR in str(last_served.get("by")), last_served
    marked = [e for e in ledger if e.get("event") == "rolled-back-from"]
    assert sha3 in str(marked[-1].get("image")), ledger[-3:]
    text = slack_texts(runner.services)[-1]
    assert f"ROLLED BACK by {ACTOR} to {prefix}" in text, text


# retry-on-stack-lock.sh's notice while another update holds the stack.
LOCK_WAIT = "the Pulumi stack is locked by another update"


def wait_for(what: str, ready: Callable[[], bool], timeout: float, *runs: ActRun) -> None:
    """Until `ready()`, or fails after `timeout` s (or when a run ends first), with the logs."""
    end = time.monotonic() + timeout
    while not ready():
        ended = [run for run in runs if not run.running()]
        if ended or time.monotonic() > end:
            tails = "\n\n".join(f"{run.log_file.name}:\n{run.log()[-6000:]}" for run in runs)
            pytest.fail(f"{what}: {'a run ended' if ended else 'timed out'}\n{tails}")
        time.sleep(0.2)


def hold_after_preview(runs: list[ActRun], timeout: float) -> None:
    """Pauses each run as soon as its preview job has succeeded, before its deploy job gets
    anywhere near `pulumi up` (which comes after ~20 s of job setup)."""
    waiting = list(runs)

    def previewed() -> bool:
        for run in list(waiting):
            result = run.jobs().get("Preview the deploy")
            if result == "succeeded":
                run.pause()
                waiting.remove(run)
            elif result is not None:
                pytest.fail(f"{run.log_file.name}: the preview failed:\n{run.log()[-6000:]}")
        return not waiting

    wait_for("both previews", previewed, timeout, *runs)


def open_the_gate(http: HttpProbe, stack: Stack, version: str) -> None:
    """Lets the gated version pass its health check: POST /api/v1/open once it answers."""
    base = stack.health_url.removesuffix("/api/v1/health")
    end = time.monotonic() + 120
    while time.monotonic() < end:
        status, body = http.get(stack.health_url)
        if status == 200 and version in body:
            return
        if version in body:
            http.post(f"{base}/api/v1/open", "")
        time.sleep(1)
    pytest.fail(f"{version} never answered healthy at {stack.health_url}")
