"""Runs this program through the real Pulumi CLI on a stack aimed at the local deploy target.

One place for what the demo (`local/demo.sh`), the end-to-end tests and the benchmark share:
finding or building the CLI (`tools/pulumi-env.sh`), a stack file made from
`local/stack-template.yaml` plus this machine's values (host key, deploy key, registry
password), and the CLI calls a user would type. Nothing here re-implements the deploy:
`pulumi up` runs the program in `__main__.py`.

    .venv/bin/python -m local.stack configure --stack local --tag v1   # used by local/demo.sh
    .venv/bin/python -m local.stack configure --stack local --tag c0ffee1 --build  # build mode
    .venv/bin/python -m local.stack configure --environment staging --tag v1  # local-staging
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "local" / "stack-template.yaml"
# `configure --environment staging`: the template with these values (own deploy dir and port).
STAGING_OVERRIDES = ROOT / "local" / "staging-overrides.yaml"
LOCAL_STACKS = {"production": "local", "staging": "local-staging"}
PULUMI_ENV_SH = ROOT / "tools" / "pulumi-env.sh"
SERVER_SH = ROOT / "local" / "server.sh"
DEMO_ENV_FILE = "APP_SECRET=local-demo-secret\n"
# `configure --build`: the program builds app/ with pulumi-docker and pushes it (tag + latest) to
# a repository of its own in the local registry, then deploys it digest-pinned, like production.
BUILD_CONTEXT = ".build/app-context"
BUILD_REPOSITORY = "mcp/app-built"


def build_mode_config(registry_user: str) -> dict[str, Any]:
    """`mcp:image` for build mode: `app/build.sh --context` writes the static binary the
    `FROM scratch` Dockerfile copies (nothing is pulled), pulumi-docker builds and pushes."""
    return {
        "mcp:image": {
            "repository": BUILD_REPOSITORY,
            "build": True,
            "context": BUILD_CONTEXT,
            "dockerfile": "Dockerfile",
            "prepare": ["bash", "app/build.sh", "--context", BUILD_CONTEXT],
            "pushUser": registry_user,
        }
    }


class PulumiCommandError(RuntimeError):
    """A pulumi command exited non-zero; carries its output for the caller to show."""

    def __init__(self, args: list[str], proc: subprocess.CompletedProcess[str]) -> None:
        self.proc = proc
        super().__init__(
            f"`pulumi {shlex.join(args)}` exited {proc.returncode}\n"
            f"--- stdout ---\n{proc.stdout}\n--- stderr ---\n{proc.stderr}"
        )


def pulumi_environment(
    base: Mapping[str, str] | None = None, plugins: Sequence[str] = ()
) -> dict[str, str]:
    """`base` (default: this process's environment) plus what `tools/pulumi-env.sh` exports.

    That script uses a `pulumi` already on PATH, or builds the toolchain from source once
    (its progress lines go to our stderr), with the resource `plugins` named (command, docker,
    github; none named: all three).
    """
    env = dict(os.environ if base is None else base)
    proc = subprocess.run(
        ["bash", str(PULUMI_ENV_SH), *plugins],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"tools/pulumi-env.sh failed (exit {proc.returncode}); see above")
    for line in proc.stdout.splitlines():
        words = shlex.split(line)
        if len(words) != 2 or words[0] != "export" or "=" not in words[1]:
            raise RuntimeError(f"unexpected line from tools/pulumi-env.sh: {line!r}")
        key, _, value = words[1].partition("=")
        env[key] = value
    return env


def local_server_env() -> dict[str, str]:
    """KEY=VALUE lines of `local/server.sh env` (the running local deploy target)."""
    proc = subprocess.run(
        ["bash", str(SERVER_SH), "env"], capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        raise RuntimeError(f"local/server.sh env failed: {proc.stderr.strip()}")
    values: dict[str, str] = {}
    for line in proc.stdout.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            values[key.strip()] = value
    return values


def deep_merge(base: dict[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """`base` with `overrides` merged in, dict by dict (lists and scalars replace)."""
    merged = dict(base)
    for key, value in overrides.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def target_config(
    *,
    ssh: tuple[str, int, str],
    registry: str,
    deploy_dir: str,
    backup_dir: str,
    http_port: int,
    project: str,
    health: tuple[int, int],
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Stack config (over the template's) for one deploy target on the local server.

    `ssh` is (host, port, user); `health` is (attempts, timeout seconds); `extra` is merged in
    last (e.g. `{"mcp:app": {"strategy": "blue-green"}, "mcp:proxy": {...}}`).
    """
    host, port, user = ssh
    attempts, timeout = health
    config: dict[str, Any] = {
        "mcp:server": {"host": host, "port": port, "user": user},
        "mcp:paths": {"deployDir": deploy_dir, "backupDir": backup_dir},
        "mcp:app": {
            "healthUrl": f"http://127.0.0.1:{http_port}/api/v1/health",
            "publicUrl": f"http://127.0.0.1:{http_port}",
            "healthAttempts": attempts,
            "healthTimeoutSeconds": timeout,
            "composeProject": project,
        },
        "mcp:image": {"registry": registry},
    }
    return deep_merge(config, extra or {})


@dataclass(frozen=True)
class MachineValues:
    """What a stack needs from the machine it deploys to (secrets among them)."""

    host_key: str
    ssh_private_key: str
    registry_user: str
    registry_password: str
    env_file_content: str = DEMO_ENV_FILE

    @classmethod
    def from_server_env(cls, env: Mapping[str, str]) -> MachineValues:
        """From the KEY=VALUE lines of `local/server.sh env`."""
        return cls(
            host_key=env["MCP_LOCAL_HOST_KEY"],
            ssh_private_key=Path(env["MCP_LOCAL_KEY"]).read_text(),
            registry_user=env["MCP_LOCAL_REGISTRY_USER"],
            registry_password=Path(env["MCP_LOCAL_REGISTRY_PASSWORD_FILE"]).read_text().strip(),
        )


@dataclass
class PulumiStack:
    """One stack of this project, driven through the `pulumi` CLI in the project directory."""

    name: str
    env: dict[str, str]
    cwd: Path = ROOT
    log: list[str] = field(default_factory=list)  # every command's output, for secret checks

    @property
    def stack_file(self) -> Path:
        return self.cwd / f"Pulumi.{self.name}.yaml"

    def run(
        self,
        *args: str,
        check: bool = True,
        input: str | None = None,
        timeout: float = 900,
        stream: bool = False,
    ) -> subprocess.CompletedProcess[str]:
        """`pulumi <args> --stack <name>`; output captured (and echoed when `stream`)."""
        argv = [*args, "--stack", self.name, "--non-interactive"]
        if stream:
            proc = _run_streaming(["pulumi", *argv], cwd=self.cwd, env=self.env, input=input)
        else:
            proc = subprocess.run(
                ["pulumi", *argv],
                cwd=self.cwd,
                env=self.env,
                input=input if input is not None else "",
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
        self.log += [proc.stdout, proc.stderr]
        if check and proc.returncode != 0:
            raise PulumiCommandError(argv, proc)
        return proc

    def create(self, config: Mapping[str, Any]) -> None:
        """Writes the stack file (template + `config`) and creates the stack in the backend."""
        template = yaml.safe_load(TEMPLATE.read_text())
        document = {
            "secretsprovider": template.get("secretsprovider", "passphrase"),
            "config": deep_merge(template.get("config", {}), config),
        }
        self.stack_file.write_text(yaml.safe_dump(document, sort_keys=False))
        self.ensure_in_backend()

    def ensure_in_backend(self) -> None:
        """Selects the stack, creating it (passphrase secrets) when the backend lacks it."""
        selected = subprocess.run(
            ["pulumi", "stack", "select", self.name, "--non-interactive"],
            cwd=self.cwd,
            env=self.env,
            capture_output=True,
            text=True,
            check=False,
        )
        if selected.returncode != 0:
            args = ["stack", "init", self.name, "--secrets-provider", "passphrase"]
            proc = subprocess.run(
                ["pulumi", *args],
                cwd=self.cwd,
                env=self.env,
                capture_output=True,
                text=True,
                check=False,
            )
            if proc.returncode != 0:
                raise PulumiCommandError(args, proc)

    def set_config(self, key: str, value: str, *, secret: bool = False) -> None:
        """`pulumi config set [--secret] --path KEY` with the value on stdin (never in argv)."""
        args = ["config", "set", "--path", key]
        if secret:
            args.insert(2, "--secret")
        self.run(*args, input=value)

    def set_machine_values(self, values: MachineValues, *, image_tag: str) -> None:
        """This machine's values: host key, deploy key, registry login, env file, image tag."""
        self.set_config("mcp:server.hostKey", values.host_key)
        self.set_config("mcp:sshPrivateKey", values.ssh_private_key, secret=True)
        self.set_config("mcp:registryPullPassword", values.registry_password, secret=True)
        self.set_config("mcp:envFileContent", values.env_file_content, secret=True)
        self.set_config("mcp:image.pullUser", values.registry_user)
        self.set_config("mcp:imageTag", image_tag)

    def up(
        self, *extra: str, check: bool = True, stream: bool = False
    ) -> subprocess.CompletedProcess[str]:
        return self.run("up", "--yes", *extra, check=check, stream=stream)

    def preview(self, *extra: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.run("preview", *extra, check=check)

    def outputs(self) -> dict[str, Any]:
        return json.loads(self.run("stack", "output", "--json").stdout or "{}")

    def history(self) -> list[dict[str, Any]]:
        return json.loads(self.run("stack", "history", "--json").stdout or "[]")

    def export(self) -> str:
        return self.run("stack", "export").stdout

    def remove(self) -> None:
        """Removes the stack from the backend and its stack file (resources are not destroyed:
        the program's remote commands have no delete action)."""
        self.run("stack", "rm", "--force", "--yes", check=False)
        self.stack_file.unlink(missing_ok=True)


def _run_streaming(
    argv: list[str], *, cwd: Path, env: Mapping[str, str], input: str | None
) -> subprocess.CompletedProcess[str]:
    """Runs `argv` echoing its output live to our stderr, and returns it captured too."""
    proc = subprocess.Popen(
        argv,
        cwd=cwd,
        env=dict(env),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(input or "")
    proc.stdin.close()
    lines = []
    for line in proc.stdout:
        sys.stderr.write(line)
        lines.append(line)
    return subprocess.CompletedProcess(argv, proc.wait(), "".join(lines), "")


DEMO_CANARY_HOLD_SECONDS = 10


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    configure = sub.add_parser("configure", help="create or update a stack for the local server")
    configure.add_argument(
        "--environment",
        choices=tuple(LOCAL_STACKS),
        default="production",
        help="production: the `local` stack (the template's values); staging: the "
        f"`local-staging` stack beside it ({STAGING_OVERRIDES.relative_to(ROOT)})",
    )
    configure.add_argument("--stack", help="the stack's name (default: by --environment)")
    configure.add_argument("--tag", required=True, help="image tag to deploy, e.g. v1")
    configure.add_argument(
        "--build",
        action="store_true",
        help=f"build app/ and push it to {BUILD_REPOSITORY} (tag + latest) instead of deploying "
        "an existing tag",
    )
    configure.add_argument(
        "--strategy",
        choices=("recreate", "blue-green", "canary"),
        help="mcp:app.strategy (default: leave it as it is; the template's is recreate)",
    )
    configure.add_argument(
        "--proxy-image", help="mcp:proxy.image, with --strategy blue-green or canary"
    )
    args = parser.parse_args(argv)
    if args.strategy in ("blue-green", "canary") and not args.proxy_image:
        parser.error(f"--strategy {args.strategy} needs --proxy-image")

    args.stack = args.stack or LOCAL_STACKS[args.environment]
    stack = PulumiStack(args.stack, env=dict(os.environ))
    if not stack.stack_file.exists():
        overrides: dict[str, Any] = {}
        source = str(TEMPLATE.relative_to(ROOT))
        if args.environment == "staging":
            overrides = yaml.safe_load(STAGING_OVERRIDES.read_text())["config"]
            source += f" and {STAGING_OVERRIDES.relative_to(ROOT)}"
        print(f"[stack] creating {stack.stack_file.name} from {source}", file=sys.stderr)
        stack.create(overrides)
    else:
        print(f"[stack] updating {stack.stack_file.name}", file=sys.stderr)
        stack.ensure_in_backend()
    values = MachineValues.from_server_env(local_server_env())
    pin = stack.run("config", "get", "mcp:imagePin", check=False).stdout.strip()
    if pin and pin.split("@", 1)[0] != args.tag:
        # The demo's --tag is an explicit new version: the last rollback's pin makes way.
        print(
            f"[stack] removing mcp:imagePin={pin} (set by rollback.py): --tag {args.tag} is "
            "a new version",
            file=sys.stderr,
        )
        stack.run("config", "rm", "mcp:imagePin")
    stack.set_machine_values(values, image_tag=args.tag)
    if args.build:
        image = build_mode_config(values.registry_user)["mcp:image"]
        for key, value in image.items():
            if isinstance(value, list):
                for index, word in enumerate(value):
                    stack.set_config(f"mcp:image.{key}[{index}]", word)
            else:
                text = str(value).lower() if isinstance(value, bool) else str(value)
                stack.set_config(f"mcp:image.{key}", text)
        stack.set_config("mcp:registryPushPassword", values.registry_password, secret=True)
    else:
        stack.set_config("mcp:image.build", "false")
    if args.strategy:
        stack.set_config("mcp:app.strategy", args.strategy)
    if args.proxy_image:
        stack.set_config("mcp:proxy.image", args.proxy_image)
    if args.strategy == "canary":
        # Short holds for a demo (production: mcp:canary.holdSeconds, default 30).
        stack.set_config("mcp:canary.holdSeconds", str(DEMO_CANARY_HOLD_SECONDS))
    mode = "build and push" if args.build else "deploy an existing image"
    print(f"[stack] stack {args.stack} configured for tag {args.tag} ({mode})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
