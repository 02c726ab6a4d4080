"""Runs the real Pulumi program (`__main__.py`) on Pulumi's mocks and records what it declares."""

from __future__ import annotations

import asyncio
import gc
import json
import os
import runpy
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
import pytest
from google.protobuf import json_format
from pulumi.runtime import mocks, rpc
from pulumi.runtime.settings import set_root_resource

ROOT = Path(__file__).resolve().parents[2]
SECRET_SIG = rpc._special_secret_sig  # the marker Pulumi puts on secret values
FAKE_DIGEST = "sha256:" + "ab" * 32


@dataclass
class Registered:
    """One resource as the program registered it with the engine."""

    type: str
    name: str
    urn: str
    inputs: dict[str, Any]
    raw_inputs: dict[str, Any]
    dependencies: list[str]
    parent: str

    def secret_paths(self) -> set[str]:
        """Top-level input names whose value (or part of it) is marked secret."""
        return {key for key, value in self.raw_inputs.items() if _contains_secret(value)}


def _unwrap_secrets(value: Any) -> Any:
    """The plain values, with Pulumi's secret wrappers removed (secret-ness: `secret_paths`)."""
    if isinstance(value, dict):
        if value.get(rpc._special_sig_key) == SECRET_SIG:
            return _unwrap_secrets(value.get("value"))
        return {key: _unwrap_secrets(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_unwrap_secrets(item) for item in value]
    return value


def _contains_secret(value: Any) -> bool:
    if isinstance(value, dict):
        if value.get(rpc._special_sig_key) == SECRET_SIG:
            return True
        return any(_contains_secret(item) for item in value.values())
    if isinstance(value, list):
        return any(_contains_secret(item) for item in value)
    return False


class FakeCloud(pulumi.runtime.Mocks):
    """Plays the providers: returns what the real ones would for the outputs the program reads."""

    def __init__(
        self,
        previous_image: str = "ghcr.io/feustey/mcp:old",
        stdout: dict[str, str] | None = None,
    ) -> None:
        self.previous_image = previous_image
        self.stdout = stdout or {}  # script name -> what it prints instead of its result

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        state = dict(args.inputs)
        if args.typ == "docker:index/image:Image":
            name = args.inputs["imageName"].rsplit(":", 1)[0]
            state["repoDigest"] = f"{name}@{FAKE_DIGEST}"
        elif args.typ == "command:remote:Command":
            state["stdout"] = self._script_stdout(args.inputs.get("create", ""))
            state["stderr"] = ""
        return f"{args.name}-id", state

    def _script_stdout(self, command: str) -> str:
        for script, stdout in self.stdout.items():
            if f"/{script} " in command:
                return stdout
        if "install-scripts.sh" in command:
            version = command.split("--version ", 1)[1].split(" ", 1)[0]
            result = {"version": version, "scripts_dir": f"/opt/mcp/.deploy/bin.d/{version}"}
        elif "backup.sh" in command:
            result = {
                "backup_id": "20251017_143025",
                "archive": "/opt/mcp-backups/mcp-backup-20251017_143025.tar.gz",
                "previous_image": self.previous_image,
            }
        elif "deploy.sh" in command:
            result = {"staged_image": command.split("--image ", 1)[1].split(" ", 1)[0]}
        elif "release.sh" in command:
            result = {
                "image": "ghcr.io/feustey/mcp:from-release",
                "health": '{"status":"ok"}',
                "backup_id": "20251017_143025",
                "previous_image": self.previous_image,
            }
        elif "restore.sh" in command:
            result = {
                "restored_backup": "20251017_143025",
                "image": "ghcr.io/feustey/mcp:restored",
                "replaced_backup": "20251017_150000",
            }
        else:
            return ""
        return "[step] progress goes to stderr\n" + json.dumps(result) + "\n"

    def call(
        self, args: pulumi.runtime.MockCallArgs
    ) -> tuple[dict[str, Any], list[tuple[str, str]]]:
        return {}, []


class RecordingMonitor(mocks.MockMonitor):
    def __init__(self, cloud: FakeCloud) -> None:
        super().__init__(cloud)
        self.registered: dict[str, Registered] = {}

    def RegisterResource(self, request: Any) -> Any:
        response = super().RegisterResource(request)
        raw = json_format.MessageToDict(request.object)
        self.registered[request.name] = Registered(
            type=request.type,
            name=request.name,
            urn=response.urn,
            inputs=_unwrap_secrets(rpc.deserialize_properties(request.object)),
            raw_inputs=raw,
            dependencies=list(request.dependencies),
            parent=request.parent,
        )
        return response


@dataclass
class ProgramRun:
    """What one run of the program declared and exported."""

    registered: dict[str, Registered]
    outputs: dict[str, Any] = field(default_factory=dict)

    def of_type(self, type_token: str) -> list[Registered]:
        return [item for item in self.registered.values() if item.type == type_token]

    def get(self, name: str) -> Registered:
        if name not in self.registered:
            raise AssertionError(f"{name!r} not declared; declared: {sorted(self.registered)}")
        return self.registered[name]

    def depends_on(self, later: str, earlier: str) -> bool:
        return self.get(earlier).urn in self.get(later).dependencies


@dataclass(frozen=True)
class TestKeys:
    __test__ = False  # not a test class

    private_key: str
    host_key: str
    app_dir: Path


@pytest.fixture(scope="session")
def test_keys(tmp_path_factory: pytest.TempPathFactory) -> TestKeys:
    """A throw-away SSH key pair made at test time (no key is ever committed)."""
    directory = tmp_path_factory.mktemp("keys")
    subprocess.run(
        [
            "ssh-keygen",
            "-q",
            "-t",
            "ed25519",
            "-N",
            "",
            "-C",
            "unit-test",
            "-f",
            str(directory / "k"),
        ],
        check=True,
    )
    public = (directory / "k.pub").read_text().split()
    app_dir = directory / "app"
    app_dir.mkdir()
    (app_dir / "Dockerfile").write_text("FROM scratch\n")
    (app_dir / "docker-compose.production.yml").write_text(
        "services:\n  mcp-api-prod:\n    image: ${MCP_IMAGE}\n"
    )
    return TestKeys(
        private_key=(directory / "k").read_text(),
        host_key=f"{public[0]} {public[1]}",
        app_dir=app_dir,
    )


def base_config(keys: TestKeys) -> dict[str, Any]:
    """A valid production-like configuration; tests override single keys."""
    return {
        "server": {
            "host": "147.79.101.32",
            "port": 22,
            "user": "feustey",
            "hostKey": keys.host_key,
        },
        "sshPrivateKey": keys.private_key,
        "paths": {"deployDir": "/opt/mcp", "backupDir": "/opt/mcp-backups", "keepBackups": 7},
        "app": {
            "composeSource": str(keys.app_dir / "docker-compose.production.yml"),
            "service": "mcp-api-prod",
            "healthUrl": "http://localhost:8000/api/v1/health",
            "healthAttempts": 10,
            "healthTimeoutSeconds": 60,
            "publicUrl": "https://api.dazno.de",
        },
        "image": {
            "registry": "ghcr.io",
            "repository": "feustey/mcp",
            "build": True,
            "context": str(keys.app_dir),
            "pullUser": "feustey",
        },
        "imageTag": "3f2c1ab",
        "registryPullPassword": "pull-token-value",
        "envFileContent": "DATABASE_URL=postgres://u:db-password@db/mcp\n",
        "github": {
            "owner": "feustey",
            "repository": "mcp",
            "reviewerUserIds": [1234567],
            "waitTimerMinutes": 5,
        },
        "slackWebhookUrl": "https://hooks.example.invalid/services/T0/B0/slack-secret-value",
    }


SECRET_KEYS = {
    "sshPrivateKey",
    "registryPullPassword",
    "registryPushPassword",
    "envFileContent",
    "slackWebhookUrl",
    "telegramBotToken",
}


def to_pulumi_config(config: dict[str, Any]) -> dict[str, str]:
    return {
        f"mcp:{key}": value if isinstance(value, str) else json.dumps(value)
        for key, value in config.items()
    }


def _retrieve_left_behind(error: BaseException) -> None:
    """Marks as retrieved the futures a failed program run left holding `error` itself.

    When an Output's apply raises, the SDK sets that exception on every Output derived from it;
    the run stops at the first one awaited and the others are never awaited, so asyncio logged
    "Future exception was never retrieved" with a traceback for each when it collected them,
    after the test had passed (about 1,000 lines per suite run). A future holding any other
    exception is left alone: that one is still logged."""
    for obj in gc.get_objects():
        # `_exception` peeks without retrieving (`exception()` would mark any error as seen).
        if isinstance(obj, asyncio.Future) and getattr(obj, "_exception", None) is error:
            obj.exception()  # retrieved: asyncio no longer reports it


@pytest.fixture
def run_program() -> Iterator[Callable[..., ProgramRun]]:
    """Runs `__main__.py` with the given `mcp:*` config on mocks; returns what it declared."""
    previous_cwd = Path.cwd()
    os.chdir(ROOT)  # the program resolves paths relative to the Pulumi project, like the CLI

    def run(
        config: dict[str, Any],
        *,
        secret_keys: set[str] | None = None,
        preview: bool = False,
        previous_image: str = "ghcr.io/feustey/mcp:old",
        stdout: dict[str, str] | None = None,
    ) -> ProgramRun:
        secrets = SECRET_KEYS if secret_keys is None else secret_keys
        cloud = FakeCloud(previous_image, stdout)
        monitor = RecordingMonitor(cloud)
        pulumi.runtime.set_all_config(
            to_pulumi_config(config), [f"mcp:{key}" for key in secrets if key in config]
        )
        set_root_resource(None)  # type: ignore[arg-type]
        pulumi.runtime.set_mocks(
            cloud, project="mcp-deploy", stack="unit", preview=preview, monitor=monitor
        )
        run_result = ProgramRun(monitor.registered)

        @pulumi.runtime.test
        def program() -> pulumi.Output[Any]:
            namespace = runpy.run_path(str(ROOT / "__main__.py"), run_name="__pulumi_program__")
            server = namespace.get("server")
            if server is None:  # the GitHub stack (no mcp:server) deploys no server
                return pulumi.Output.from_input({})
            return pulumi.Output.all(
                image=server.image,
                backup_id=server.backup_id,
                previous_image=server.previous_image,
            ).apply(run_result.outputs.update)

        try:
            program()
        except Exception as error:
            _retrieve_left_behind(error)
            raise
        return run_result

    try:
        yield run
    finally:
        os.chdir(previous_cwd)
