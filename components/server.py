"""Turns the deploy plan (components/plan.py) into pulumi-command resources over SSH.

Each upload becomes a `remote.CopyToRemote`, each step a `remote.Command` running one script
from `remote/` with the pinned host key; the plan says what, this says how. Steps re-run only
when their triggers change; `pulumi preview` runs nothing remote. Only the release (backup +
compose up + health check + automatic rollback) changes what serves traffic: when it fails,
Pulumi does not record it as done, and retrying `pulumi up` runs it again with a fresh backup.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass

import pulumi
from pulumi_command import remote

from components import remote_commands as rc
from components.plan import DeployPlan, Digest, Step, Trigger
from components.results import parse_result
from components.settings import ServerSettings


@dataclass(frozen=True)
class ServerDeploymentArgs:
    server: ServerSettings
    plan: DeployPlan
    inputs: Mapping[str, pulumi.Input[str]]  # the values of the plan's Refs, by name


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
        self._inputs = args.inputs
        server = args.server
        connection = remote.ConnectionArgs(
            host=server.host,
            port=server.port,
            user=server.user,
            private_key=server.private_key,
            host_key=server.host_key,
            dial_error_limit=3,
            per_dial_timeout=15,
        )
        done: dict[str, pulumi.Resource] = {}
        for upload in args.plan.uploads:
            done[upload.name] = remote.CopyToRemote(
                f"{name}-{upload.name}",
                connection=connection,
                # A folder is copied with its contents into remote_path (the trailing slash).
                source=pulumi.FileArchive(f"{upload.source}/")
                if upload.source.is_dir()
                else pulumi.FileAsset(str(upload.source)),
                remote_path=upload.remote_path,
                triggers=self._triggers(upload.triggers),
                opts=self._after(done, upload.after),
            )
        results: dict[str, pulumi.Output[dict[str, str]]] = {}
        for step in args.plan.steps:
            command = remote.Command(
                f"{name}-{step.name}",
                connection=connection,
                create=self._command(step),
                stdin=self._stdin(step),
                triggers=self._triggers(step.triggers),
                opts=self._after(done, step.after),
            )
            done[step.name] = command
            results[step.name] = command.stdout.apply(
                lambda stdout, step=step: parse_result(
                    f"{name}-{step.name}", stdout, step.result_keys
                )
            )
        self.steps = [done[step.name] for step in args.plan.steps]
        outputs = {
            reported.output: (
                pulumi.Output.unsecret(
                    results[reported.step].apply(lambda result, key=reported.key: result[key])
                )
                if reported.step is not None
                else pulumi.Output.from_input("")
            )
            for reported in args.plan.outputs
        }
        self.image = outputs["image"]
        self.backup_id = outputs["backup_id"]
        self.previous_image = outputs["previous_image"]
        # Every step's result is read, so a missing or malformed result line fails the update.
        self.register_outputs({**outputs, "results": pulumi.Output.all(**results)})

    def _after(
        self, done: Mapping[str, pulumi.Resource], names: tuple[str, ...]
    ) -> pulumi.ResourceOptions:
        return pulumi.ResourceOptions(parent=self, depends_on=[done[name] for name in names])

    def _triggers(self, triggers: tuple[Trigger, ...]) -> list[pulumi.Input[str]]:
        resolved: list[pulumi.Input[str]] = []
        for trigger in triggers:
            if isinstance(trigger, Digest):
                value = pulumi.Output.from_input(self._inputs[trigger.ref.name])
                resolved.append(
                    pulumi.Output.secret(
                        value.apply(lambda text: hashlib.sha256(text.encode()).hexdigest())
                    )
                )
            elif isinstance(trigger, rc.Ref):
                resolved.append(self._inputs[trigger.name])
            else:
                resolved.append(trigger)
        return resolved

    def _command(self, step: Step) -> pulumi.Input[str]:
        if not step.refs:
            return step.command()
        values = {ref.name: self._inputs[ref.name] for ref in step.refs}
        return pulumi.Output.all(**values).apply(step.command)

    def _stdin(self, step: Step) -> pulumi.Input[str] | None:
        if step.stdin is None:
            return None
        values = {ref.name: self._inputs[ref.name] for ref in step.stdin}
        return pulumi.Output.secret(
            pulumi.Output.all(**values).apply(
                lambda resolved: rc.stdin_text(step.stdin or (), resolved)
            )
        )
