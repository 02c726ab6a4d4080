"""Deploys MCP: the image, then the deploy plan (deploy -> release) on the server. A stack with
`mcp:github` and no `mcp:server` (Pulumi.github.yaml) declares the GitHub side instead."""

from typing import TYPE_CHECKING

import pulumi

from components.settings import is_github_stack, load_github_stack_settings

if TYPE_CHECKING:
    from components.server import ServerDeployment


def declare_github_stack() -> None:
    """The GitHub side alone, in a stack of its own: an expired token or a GitHub outage fails
    this stack's updates, never a deploy or a rollback of a server."""
    from components.github_repo import GitHubSetup, GitHubSetupArgs

    setup = GitHubSetup("github", GitHubSetupArgs(github=load_github_stack_settings()))
    pulumi.export("environment", setup.environment.environment)


def declare_server_stack() -> "ServerDeployment":
    from components.image import AppImage
    from components.plan import deploy_plan, plan_inputs
    from components.server import ServerDeployment, ServerDeploymentArgs
    from components.settings import load_settings

    settings = load_settings()

    if settings.github is not None:
        # A stack made before the GitHub stack existed: its GitHub side is still declared here,
        # but nothing on the server waits for it (an outage fails the update, not the deploy).
        # Imported only then: loading pulumi-github costs ~0.3 s per run.
        from components.github_repo import GitHubSetup, GitHubSetupArgs

        pulumi.log.warn(
            "mcp:github is declared by a stack that deploys a server: an expired GitHub token or "
            "a GitHub outage fails its updates (the server steps still run). Move it to a GitHub "
            "stack of its own: python tools/move_github_side.py (README: 'The GitHub stack')."
        )
        GitHubSetup(
            "github",
            GitHubSetupArgs(github=settings.github, server=settings.server, paths=settings.paths),
        )

    # Nothing touches the server before the image is in place: a refused push fails the update
    # while the server still runs what it ran.
    server_waits_for: list[pulumi.Resource] = []
    # A restore redeploys what the backup's manifest names, so it needs no image.
    image_ref: pulumi.Input[str] = ""
    if not settings.is_restore:
        app_image = AppImage("app", settings.image)
        image_ref = app_image.reference
        server_waits_for.append(app_image)

    server = ServerDeployment(
        "server",
        ServerDeploymentArgs(
            server=settings.server,
            plan=deploy_plan(settings),
            inputs=plan_inputs(settings, image_ref),
        ),
        opts=pulumi.ResourceOptions(depends_on=server_waits_for),
    )

    # No notification here: a success message from the program would go out before the
    # workflow's smoke test. The workflows call `oncall.py notify` once, at the end of each run.

    pulumi.export("image", server.image)
    pulumi.export("backup_id", server.backup_id)
    pulumi.export("previous_image", server.previous_image)
    pulumi.export("url", settings.app.public_url)
    pulumi.export("mode", "restore" if settings.is_restore else "deploy")
    return server


if is_github_stack():
    declare_github_stack()
else:
    server = declare_server_stack()
