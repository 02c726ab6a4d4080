"""Runs this repository's workflows with act (tools/act.sh) against the local deploy target.

* `Repository`: a git repository made from this checkout's files (what a push would carry),
  with a stack file `Pulumi.<stack>.yaml` for a fresh deploy target committed in it, as
  production's is; each `commit` is the next push.
* `Stack`: the stack the workflows deploy, named to them by the repository variable
  PULUMI_STACK (the workflows' only seam: it defaults to `production`).
* `run_act`: one event, one workflow, with the local target's values as the repository's
  secrets and variables (written to files given to act, never on its command line), the
  GitHub stand-in API for what the program declares and for pull-request comments, and the
  webhook sink for Slack. Returns each job's result as act reports it, and the log.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from local.stack import MachineValues, PulumiStack
from tests.e2e.github_standin import ApiError, GitHubStandIn
from tests.e2e.webhook_sink import WebhookSink

ROOT = Path(__file__).resolve().parents[3]
ACT_SH = ROOT / "tools" / "act.sh"
OWNER, REPOSITORY = "feustey-act", "mcp"
REVIEWER_ID = 1234567
ACTOR = "mcp-ci"  # the local registry's push user: the workflow logs in as github.actor
# What the workflows' test jobs run under act (variable PYTEST_SELECTION): a real pytest run of
# a small part of the suite, so a run stays bounded; the whole suite runs in tools/test.sh.
PYTEST_SELECTION = "tests/workflows/test_release_outcome.py -q -p no:cacheprovider"
DEPLOY = ".github/workflows/deploy-production.yml"
TESTS = ".github/workflows/tests.yml"
ROLLBACK = ".github/workflows/rollback.yml"
UNDER_TEST = (".github", "tools", "tests/workflows")
_COMMENTS = re.compile(r"/api/v3/repos/([^/]+)/([^/]+)/issues/([0-9]+)/comments")


class StandInWithComments(GitHubStandIn):
    """The GitHub stand-in plus the pull-request comment endpoints pulumi/actions calls
    (`GET`/`POST /repos/{owner}/{repo}/issues/{number}/comments`); the bodies are kept."""

    def __init__(self, owner: str, repo: str, token: str) -> None:
        super().__init__(owner, repo, token)
        self.comments: dict[int, list[dict[str, Any]]] = {}

    def _answer(self, method: str, path: str, authorization: str, raw: bytes) -> tuple[int, Any]:
        # GitHub answers the owner lookup without a token too (the pull-request preview's
        # provider has none): 404 for a user account, as the stand-in does with one.
        if method == "GET" and not authorization and path == f"/api/v3/orgs/{self.owner}":
            return 404, {"message": "Not Found"}
        match = _COMMENTS.fullmatch(path)
        if match is None:
            return super()._answer(method, path, authorization, raw)
        if authorization.split(" ", 1)[-1] != self.token:
            return 401, {"message": "Bad credentials"}
        if (match.group(1), match.group(2)) != (self.owner, self.repo):
            return 404, {"message": "Not Found"}
        number = int(match.group(3))
        thread = self.comments.setdefault(number, [])
        if method == "GET":
            return 200, thread
        if method == "POST":
            body = json.loads(raw or b"{}")
            if not isinstance(body, dict) or not isinstance(body.get("body"), str):
                raise ApiError(422, "body is required")
            comment = {"id": self._new_id(), "body": body["body"], "user": {"login": "bot"}}
            thread.append(comment)
            return 201, comment
        return 404, {"message": "Not Found"}


@dataclass
class Repository:
    """A git repository of this checkout's files; `origin` names OWNER/REPOSITORY on GitHub
    (never contacted: act reads the repository's name from it)."""

    path: Path

    @classmethod
    def create(cls, directory: Path) -> Repository:
        """The files of the commit checked out (what a push carries), with the working tree's
        copies of the workflows, their scripts, tools/ and these tests: what is under test here.
        Other uncommitted work in the checkout is left out (from a clean clone, as in CI, the
        two are the same)."""
        directory.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(
            ["git", "archive", "HEAD"], cwd=ROOT, capture_output=True, check=True
        ).stdout
        subprocess.run(["tar", "-x", "-C", str(directory)], input=archive, check=True)
        listed = subprocess.run(
            ["git", "ls-files", "-co", "--exclude-standard", "-z", "--", *UNDER_TEST],
            cwd=ROOT, capture_output=True, check=True,
        ).stdout.decode().split("\0")  # fmt: skip
        for name in filter(None, listed):
            source = ROOT / name
            if source.is_file():
                dest = directory / name
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, dest)
        repo = cls(directory)
        repo.git("init", "-q", "-b", "main")
        repo.git("remote", "add", "origin", f"https://github.com/{OWNER}/{REPOSITORY}.git")
        repo.commit("initial import")
        return repo

    def clone(self, directory: Path) -> Repository:
        """A clone of this repository, at its HEAD, with the same `origin` (the same
        repository to act): a second checkout whose next commit does not change this one's
        working tree while a run of this one is under way."""
        subprocess.run(
            ["git", "clone", "-q", str(self.path), str(directory)], check=True, capture_output=True
        )
        clone = Repository(directory)
        clone.git("remote", "set-url", "origin", f"https://github.com/{OWNER}/{REPOSITORY}.git")
        return clone

    def git(self, *args: str) -> str:
        env = {
            **os.environ,
            "GIT_AUTHOR_NAME": ACTOR, "GIT_AUTHOR_EMAIL": "ci@example.invalid",
            "GIT_COMMITTER_NAME": ACTOR, "GIT_COMMITTER_EMAIL": "ci@example.invalid",
        }  # fmt: skip
        proc = subprocess.run(
            ["git", *args], cwd=self.path, env=env, capture_output=True, text=True, check=True
        )
        return proc.stdout.strip()

    def commit(self, message: str) -> str:
        self.git("add", "-A")
        self.git("commit", "-q", "--allow-empty", "-m", message)
        return self.git("rev-parse", "HEAD")

    def set_app(self, version: str, mode: str = "ok") -> None:
        """The sample app's Dockerfile reports `version` and behaves as `mode` (error500: the
        health route answers 500, a broken version)."""
        dockerfile = self.path / "app" / "Dockerfile"
        text = dockerfile.read_text()
        text = re.sub(r"^ARG VERSION=.*$", f"ARG VERSION={version}", text, flags=re.MULTILINE)
        text = re.sub(r"^ARG MODE=.*$", f"ARG MODE={mode}", text, flags=re.MULTILINE)
        dockerfile.write_text(text)


@dataclass
class Stack:
    """The stack the workflows deploy (their variable PULUMI_STACK), in the file backend of
    `pulumi_env`, its file committed in the repository."""

    pulumi: PulumiStack
    repository: Repository
    image_repository: str
    health_url: str

    @property
    def name(self) -> str:
        return self.pulumi.name


@dataclass
class ActResult:
    returncode: int
    log: str
    jobs: dict[str, str] = field(default_factory=dict)  # job name -> succeeded|failed

    def job(self, name: str) -> str:
        return self.jobs.get(name, "not run")


@dataclass
class Services:
    """What stands in for GitHub and Slack during a run."""

    github: StandInWithComments
    slack: WebhookSink
    slack_url: str


def make_stack(
    repository: Repository,
    pulumi_env: dict[str, str],
    values: MachineValues,
    config: dict[str, Any],
    services: Services,
    *,
    image_repository: str | None = None,
    github: bool = True,
) -> Stack:
    """A stack of its own image repository (or `image_repository`: a staging stack shares
    production's), declaring the GitHub side at the stand-in unless `github` is False."""
    name = f"act-{secrets.token_hex(3)}"
    image_repository = image_repository or f"mcp/act-{secrets.token_hex(3)}"
    stack = PulumiStack(name, env=dict(pulumi_env), cwd=repository.path)
    merged = {
        **config,
        "mcp:image": {
            **config.get("mcp:image", {}),
            "repository": image_repository,
            "build": True,
            "context": ".build/app-context",
            "dockerfile": "Dockerfile",
            "prepare": ["bash", "app/build.sh", "--context", ".build/app-context"],
        },
    }
    if github:
        merged["mcp:github"] = {
            "owner": OWNER,
            "repository": REPOSITORY,
            "apiUrl": services.github.base_url,
            "reviewerUserIds": [REVIEWER_ID],
            "pulumiBackendUrl": pulumi_env["PULUMI_BACKEND_URL"],
        }
    stack.create(merged)
    stack.set_machine_values(values, image_tag="none-yet")
    stack.set_config("mcp:slackWebhookUrl", services.slack_url, secret=True)
    repository.commit(f"stack {name} for the local deploy target")
    health_url = str(config["mcp:app"]["healthUrl"])
    return Stack(stack, repository, image_repository, health_url)


def runner_environment(
    pulumi_env: dict[str, str], ca_bundle: Path, docker_config: Path
) -> dict[str, str]:
    """The runner machine's environment (act on the host passes it to every job): the Pulumi
    toolchain on PATH (pulumi/actions finds that version and installs nothing), its plugins,
    the CA of the loopback webhook sink, a Docker config dir of its own (the workflow's
    `docker login` writes there, not in this machine's ~/.docker), and nothing of the tests'
    own Pulumi credentials."""
    path = [p for p in pulumi_env["PATH"].split(":") if p and "/.venv/" not in p]
    docker_config.mkdir(parents=True, exist_ok=True)
    env = {
        "PATH": ":".join(path),
        "HOME": os.environ.get("HOME", "/root"),
        "DOCKER_CONFIG": str(docker_config),
        "LANG": "C.UTF-8",
        "PULUMI_SKIP_UPDATE_CHECK": "true",
        "PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION": "true",
        # curl (the notify jobs, the program's Slack step) and pip (through requests) read it:
        # this machine's CAs plus the sink's certificate.
        "CURL_CA_BUNDLE": str(_combined_ca_bundle(ca_bundle)),
        # retry-on-stack-lock.sh: try again every 5 s rather than 30 (the wait itself is real).
        "MCP_LOCK_RETRY_SECONDS": "5",
        "NO_PROXY": "127.0.0.1,localhost",
        "no_proxy": "127.0.0.1,localhost",
    }
    if "PULUMI_HOME" in pulumi_env:
        toolchain_home = Path(pulumi_env["PULUMI_HOME"])
        env["PULUMI_HOME"] = str(_runner_pulumi_home(toolchain_home, docker_config))
    for key, value in os.environ.items():  # how this machine reaches the package registries
        if key.lower() in ("http_proxy", "https_proxy") or key.startswith("PIP_"):
            env[key] = value
    return env


def _runner_pulumi_home(toolchain_home: Path, docker_config: Path) -> Path:
    """The runner's own PULUMI_HOME, next to its Docker config: the toolchain's plugins (a
    symlink, nothing copied), and its own credentials.json and workspaces. The workflows'
    `pulumi login` writes there, never in the toolchain's home that the end-to-end tests use at
    the same time (tests/conftest.py runs the act cases beside them)."""
    home = docker_config.with_name("pulumi-home")
    home.mkdir(parents=True, exist_ok=True)
    plugins = home / "plugins"
    if not plugins.is_symlink():
        plugins.symlink_to(toolchain_home / "plugins", target_is_directory=True)
    return home


def _combined_ca_bundle(extra: Path) -> Path:
    system = Path(os.environ.get("PIP_CERT") or "/etc/ssl/certs/ca-certificates.crt")
    combined = extra.with_name("runner-ca-bundle.crt")
    combined.write_text(system.read_text() + "\n" + extra.read_text())
    return combined


def _write_dotenv(path: Path, values: dict[str, str]) -> Path:
    for key, value in values.items():
        assert "\n" not in value, f"{key}: one line only"
    path.write_text("".join(f"{key}={value}\n" for key, value in values.items()))
    path.chmod(0o600)
    return path


_JOB_END = re.compile(
    r"^\[(?P<wf>[^/\]]+)/(?P<job>[^\]]+?)\s*\]\s+🏁\s+Job (?P<result>succeeded|failed)"
)


@dataclass
class ActRun:
    """An act run under way (`start_act`): its process and its log, written as act runs."""

    process: subprocess.Popen[bytes]
    log_file: Path
    timeout: float

    def log(self) -> str:
        return self.log_file.read_text(errors="replace")

    def jobs(self) -> dict[str, str]:
        """The jobs ended so far: name -> succeeded|failed."""
        return {m["job"]: m["result"] for m in map(_JOB_END.match, self.log().splitlines()) if m}

    def pause(self) -> None:
        """Holds act (SIGSTOP to its process group): between two jobs, the next one waits."""
        os.killpg(self.process.pid, signal.SIGSTOP)

    def resume(self) -> None:
        os.killpg(self.process.pid, signal.SIGCONT)

    def running(self) -> bool:
        return self.process.poll() is None

    def stop(self) -> None:
        """Ends the run: act and the job processes it started (its own process group)."""
        if self.running():
            self.resume()
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()

    def wait(self) -> ActResult:
        try:
            self.process.wait(timeout=self.timeout)
        except subprocess.TimeoutExpired:
            self.stop()
            raise
        return ActResult(self.process.returncode, self.log(), self.jobs())


def start_act(
    stack: Stack,
    event: str,
    workflow: str,
    payload: dict[str, Any],
    *,
    secrets_: dict[str, str],
    vars_: dict[str, str],
    env: dict[str, str],
    inputs: dict[str, str] | None = None,
    work: Path,
    log_name: str = "",
    timeout: float = 900,
) -> ActRun:
    """Starts `tools/act.sh EVENT -W WORKFLOW` in the repository, its log kept in `work`.
    act copies the repository's working tree into each job when the job starts: change the
    tree (the next commit) only once the jobs of a run under way have started."""
    tag = secrets.token_hex(3)
    event_file = work / f"event-{tag}.json"
    event_file.write_text(json.dumps(payload))
    secret_file = _write_dotenv(work / f"secrets-{tag}", secrets_)
    var_file = _write_dotenv(work / f"vars-{tag}", {"PULUMI_STACK": stack.name, **vars_})
    argv = [
        "bash", str(ACT_SH), event, "-W", workflow, "-e", str(event_file),
        "--secret-file", str(secret_file), "--var-file", str(var_file), "--actor", ACTOR,
        "--env", f"GITHUB_API_URL={env['GITHUB_API_URL']}",
    ]  # fmt: skip
    for key, value in (inputs or {}).items():
        argv += ["--input", f"{key}={value}"]
    run_env = {k: v for k, v in env.items() if k != "GITHUB_API_URL"}
    (work / f"runner-path-{tag}").write_text(run_env["PATH"].replace(":", "\n") + "\n")
    log_file = work / f"act-{log_name or event}-{tag}.log"  # written as act runs: `tail -f` it
    with log_file.open("w") as out:
        process = subprocess.Popen(
            argv, cwd=stack.repository.path, env=run_env, stdin=subprocess.DEVNULL,
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    return ActRun(process, log_file, timeout)


def run_act(
    stack: Stack,
    event: str,
    workflow: str,
    payload: dict[str, Any],
    *,
    secrets_: dict[str, str],
    vars_: dict[str, str],
    env: dict[str, str],
    inputs: dict[str, str] | None = None,
    work: Path,
    log_name: str = "",
    timeout: float = 900,
) -> ActResult:
    """`tools/act.sh EVENT -W WORKFLOW` in the repository, to its end (`start_act`)."""
    return start_act(
        stack, event, workflow, payload, secrets_=secrets_, vars_=vars_, env=env,
        inputs=inputs, work=work, log_name=log_name, timeout=timeout,
    ).wait()  # fmt: skip


def stack_locks(pulumi_env: dict[str, str], stack: Stack) -> list[Path]:
    """The lock files of `stack` in the file backend (PULUMI_BACKEND_URL, file://...): one
    while an update (`pulumi up`, a rollback's) holds the stack; a preview takes none."""
    backend = Path(pulumi_env["PULUMI_BACKEND_URL"].removeprefix("file://"))
    return sorted(backend.glob(f".pulumi/locks/**/{stack.name}/*.json"))


def push_payload(repository: Repository, sha: str, message: str) -> dict[str, Any]:
    return {
        "ref": "refs/heads/main",
        "after": sha,
        "head_commit": {"id": sha, "message": message},
        "repository": {"full_name": f"{OWNER}/{REPOSITORY}", "name": REPOSITORY},
    }


def pull_request_payload(number: int, base: str, head: str, branch: str) -> dict[str, Any]:
    """A pull request from `branch` of this repository (not a fork: it may comment) to main."""
    repository = {"full_name": f"{OWNER}/{REPOSITORY}", "name": REPOSITORY}
    return {
        "action": "opened",
        "number": number,
        "pull_request": {
            "number": number,
            "head": {"sha": head, "ref": branch, "repo": repository},
            "base": {"sha": base, "ref": "main", "repo": repository},
        },
        "repository": repository,
    }
