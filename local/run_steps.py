"""Runs the program's server steps for a stack file without the Pulumi engine (demo only).

    .venv/bin/python local/run_steps.py Pulumi.local.yaml --set mcp:imageTag=v2 \
        --set-from-file mcp:sshPrivateKey=KEY_FILE ... --ssh-option=-i --ssh-option=KEY_FILE

It validates the stack config with the program's own settings layer and builds every command
line and stdin with the program's own builders (components.remote_commands), then runs them in
the program's order over the system `ssh` client: install scripts and compose file -> backup ->
deploy -> release. Where Pulumi is installed, `pulumi up` does this; this runner exists for
machines where the engine cannot be installed, and is what `local/demo.sh --scripts-only` uses.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from components import remote_commands
from components.server import script_result
from components.settings import ConfigError, Settings, load_settings

SECRET_KEYS = {
    "sshPrivateKey",
    "registryPullPassword",
    "registryPushPassword",
    "envFileContent",
    "slackWebhookUrl",
}


class StackFileSource:
    """`mcp:*` values of a Pulumi.<stack>.yaml, plus --set overrides (secrets come from these)."""

    def __init__(self, stack_file: Path, overrides: dict[str, str]) -> None:
        config: dict[str, Any] = (yaml.safe_load(stack_file.read_text()) or {}).get("config", {})
        self.values = {
            key.removeprefix("mcp:"): value if isinstance(value, str) else json.dumps(value)
            for key, value in config.items()
            if key.startswith("mcp:")
        }
        for key, value in overrides.items():
            name, _, path = key.removeprefix("mcp:").partition(".")
            if path:
                merged = json.loads(self.values.get(name, "{}"))
                merged[path] = value
                self.values[name] = json.dumps(merged)
            else:
                self.values[name] = value

    def get(self, key: str) -> str | None:
        return self.values.get(key)

    def is_secret(self, key: str) -> bool:
        return key in SECRET_KEYS


def say(message: str) -> None:
    print(f"[steps] {message}", file=sys.stderr, flush=True)


class SshSteps:
    def __init__(self, settings: Settings, source: StackFileSource, ssh_options: list[str]) -> None:
        self.settings = settings
        server = settings.server
        self.ssh = ["ssh", "-p", str(server.port), *ssh_options, f"{server.user}@{server.host}"]
        # The settings hold secrets as Pulumi Outputs, which resolve only inside the engine;
        # read the same validated keys from the source instead.
        self.secrets = {
            name: value
            for name, key in (("registry", "registryPullPassword"), ("env", "envFileContent"))
            if (value := source.get(key))
        }

    def run(self, command: str, stdin: str = "", *, step: str) -> dict[str, str]:
        say(f"{step}: {command}")
        proc = subprocess.run([*self.ssh, command], input=stdin, text=True, stdout=subprocess.PIPE)
        if proc.returncode != 0:
            say(f"{step} FAILED (exit {proc.returncode}); see the script's lines above")
            sys.exit(proc.returncode)
        return script_result(proc.stdout)

    def copy(self, source: Path, destination: str) -> None:
        directory = shlex.quote(destination.rsplit("/", 1)[0])
        self.run(
            f"mkdir -p {directory} && cat > {shlex.quote(destination)}",
            source.read_text(),
            step=f"copy {source.name}",
        )

    def deploy(self) -> dict[str, str]:
        settings, paths, app = self.settings, self.settings.paths, self.settings.app
        for name in remote_commands.SCRIPT_NAMES:
            self.copy(remote_commands.script_source(name), f"{paths.scripts_dir}/{name}")
        self.copy(Path(app.compose_source), f"{paths.staged_dir}/{app.compose_file}")
        backup = self.run(remote_commands.backup_command(paths, app), step="backup")
        registry_user = settings.image.pull_user if "registry" in self.secrets else None
        self.run(
            remote_commands.deploy_command(
                paths,
                app,
                settings.image.reference,
                with_env_file="env" in self.secrets,
                registry=settings.image.registry if registry_user else None,
                registry_user=registry_user,
            ),
            remote_commands.deploy_stdin(self.secrets.get("registry"), self.secrets.get("env")),
            step="deploy",
        )
        release = self.run(
            remote_commands.release_command(
                paths, app, backup["backup_id"], with_env_file="env" in self.secrets
            ),
            step="release",
        )
        return {
            **release,
            "backup_id": backup["backup_id"],
            "previous_image": backup["previous_image"],
        }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("stack_file", type=Path)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument(
        "--set-from-file",
        action="append",
        default=[],
        metavar="KEY=PATH",
        help="a value read from a file (for secrets: never on the command line)",
    )
    parser.add_argument("--ssh-option", action="append", default=[], metavar="OPTION")
    args = parser.parse_args(argv)
    overrides = dict(item.split("=", 1) for item in args.set)
    for item in args.set_from_file:
        key, path = item.split("=", 1)
        overrides[key] = Path(path).read_text().rstrip("\n") + (
            "\n" if key == "mcp:sshPrivateKey" else ""
        )
    source = StackFileSource(args.stack_file, overrides)
    try:
        settings = load_settings(source)
    except ConfigError as error:
        say(str(error))
        return 2
    if settings.is_restore or settings.image.build:
        say("this runner only deploys existing images (image.build false, no restoreBackup)")
        return 2
    outputs = SshSteps(settings, source, args.ssh_option).deploy()
    print(json.dumps(outputs))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
