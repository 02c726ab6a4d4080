"""The server side of a deploy: install the remote scripts, then deploy -> release.

Each step is a `pulumi_command.remote.Command` running one script from `remote/` over SSH with
the pinned host key. Steps re-run only when what they depend on changes (the image reference,
the compose file, the env file); `pulumi preview` runs nothing remote.

Why separate resources and not one: the release step (backup + compose up + health check +
automatic rollback) is the only one that changes what serves traffic. If it fails, the script
restores the backup it took at its own start and exits non-zero, so Pulumi does not record the
release as done, while the staged files stay valid; retrying the same `pulumi up` runs the
release again, with a fresh backup (a retry hours later never rolls back to data older than
its own start), not just a health check against the restored old version.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import pulumi
from pulumi_command import remote

from components import remote_commands
from components.settings import AppSettings, ImageSettings, PathSettings, ServerSettings


def script_result(stdout: str) -> dict[str, str]:
    """The JSON object a remote script prints as its last stdout line ({} when there is none)."""
    lines = [line for line in (stdout or "").splitlines() if line.strip()]
    if not lines:
        return {}
    try:
        parsed = json.loads(lines[-1])
    except ValueError:
        return {}
    return (
        {str(key): str(value) for key, value in parsed.items()} if isinstance(parsed, dict) else {}
    )


def json_field(stdout: pulumi.Output[str], key: str) -> pulumi.Output[str]:
    """Reads `key` from a remote script's result line; not a secret, so shown in outputs."""
    return pulumi.Output.unsecret(stdout.apply(lambda text: script_result(text).get(key, "")))


def file_sha256(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@dataclass(frozen=True)
class ServerDeploymentArgs:
    server: ServerSettings
    paths: PathSettings
    app: AppSettings
    image: ImageSettings
    image_ref: pulumi.Input[str]
    env_file_content: pulumi.Output[str] | None
    restore_backup: str | None = None


class ServerDeployment(pulumi.ComponentResource):
    """Runs the deploy (or a manual restore) on the server over SSH."""

    image: pulumi.Output[str]
    backup_id: pulumi.Output[str]
    previous_image: pulumi.Output[str]
    steps: list[pulumi.Resource]

    def __init__(
        self, name: str, args: ServerDeploymentArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("mcp:deploy:Server", name, None, opts)
        self._args = args
        self.connection = remote.ConnectionArgs(
            host=args.server.host,
            port=args.server.port,
            user=args.server.user,
            private_key=args.server.private_key,
            host_key=args.server.host_key,
            dial_error_limit=3,
            per_dial_timeout=15,
        )
        self.scripts = self._install_scripts(name)
        if args.restore_backup is not None:
            self._declare_restore(name, args.restore_backup)
        else:
            self._declare_deploy(name)
        self.register_outputs(
            {
                "image": self.image,
                "backup_id": self.backup_id,
                "previous_image": self.previous_image,
            }
        )

    # ------------------------------------------------------------------ steps

    def _child(self, depends_on: list[pulumi.Resource] | None = None) -> pulumi.ResourceOptions:
        return pulumi.ResourceOptions(parent=self, depends_on=depends_on or [])

    def _install_scripts(self, name: str) -> list[remote.CopyToRemote]:
        """Copies each script to `<deploy-dir>/.deploy/bin/` (again when its content changes)."""
        copies = []
        for script in remote_commands.SCRIPT_NAMES:
            source = remote_commands.script_source(script)
            copies.append(
                remote.CopyToRemote(
                    f"{name}-script-{script.removesuffix('.sh')}",
                    connection=self.connection,
                    source=pulumi.FileAsset(str(source)),
                    remote_path=f"{self._args.paths.scripts_dir}/{script}",
                    triggers=[file_sha256(source)],
                    opts=self._child(),
                )
            )
        return copies

    def _release_triggers(self) -> list[pulumi.Input[str]]:
        """What makes a new release: the image, the compose file and the env file."""
        args = self._args
        triggers: list[pulumi.Input[str]] = [args.image_ref, file_sha256(args.app.compose_source)]
        if args.env_file_content is not None:
            triggers.append(
                pulumi.Output.secret(
                    args.env_file_content.apply(
                        lambda text: hashlib.sha256(text.encode()).hexdigest()
                    )
                )
            )
        return triggers

    def _declare_deploy(self, name: str) -> None:
        args = self._args
        triggers = self._release_triggers()
        with_env = args.env_file_content is not None

        self.compose_upload = remote.CopyToRemote(
            f"{name}-compose",
            connection=self.connection,
            source=pulumi.FileAsset(args.app.compose_source),
            remote_path=f"{args.paths.staged_dir}/{args.app.compose_file}",
            triggers=triggers,
            opts=self._child(depends_on=list(self.scripts)),
        )

        registry_user = args.image.pull_user if args.image.pull_password is not None else None
        stdin = pulumi.Output.secret(
            pulumi.Output.all(
                args.image.pull_password if registry_user else None, args.env_file_content
            ).apply(lambda values: remote_commands.deploy_stdin(values[0], values[1]))
        )
        self.deploy = remote.Command(
            f"{name}-deploy",
            connection=self.connection,
            create=pulumi.Output.from_input(args.image_ref).apply(
                lambda ref: remote_commands.deploy_command(
                    args.paths,
                    args.app,
                    ref,
                    with_env_file=with_env,
                    registry=args.image.registry if registry_user else None,
                    registry_user=registry_user,
                )
            ),
            stdin=stdin,
            triggers=triggers,
            opts=self._child(depends_on=[*self.scripts, self.compose_upload]),
        )

        # The release takes its own backup at the start of every attempt and reports it.
        self.release = remote.Command(
            f"{name}-release",
            connection=self.connection,
            create=remote_commands.release_command(args.paths, args.app, with_env_file=with_env),
            triggers=triggers,
            opts=self._child(depends_on=[self.deploy]),
        )
        self.image = json_field(self.release.stdout, "image")
        self.backup_id = json_field(self.release.stdout, "backup_id")
        self.previous_image = json_field(self.release.stdout, "previous_image")
        self.steps = [self.compose_upload, self.deploy, self.release]

    def _declare_restore(self, name: str, backup: str) -> None:
        args = self._args
        self.restore = remote.Command(
            f"{name}-restore",
            connection=self.connection,
            create=remote_commands.restore_command(args.paths, args.app, backup),
            triggers=[backup],
            opts=self._child(depends_on=list(self.scripts)),
        )
        self.image = json_field(self.restore.stdout, "image")
        self.backup_id = json_field(self.restore.stdout, "restored_backup")
        self.previous_image = pulumi.Output.from_input("")
        self.steps = [self.restore]
