"""Deploys MCP: GitHub setup, image, then the deploy plan (deploy -> release) on the server."""

import pulumi

from components.image import AppImage
from components.plan import deploy_plan, plan_inputs
from components.server import ServerDeployment, ServerDeploymentArgs
from components.settings import load_settings

settings = load_settings()

# Nothing touches the server before the GitHub side and the image are in place: a refused token
# or a refused push fails the update while the server still runs what it ran.
server_waits_for: list[pulumi.Resource] = []

if settings.github is not None:
    # Imported only for stacks that manage GitHub: loading pulumi-github costs ~0.3 s per run.
    from components.github_repo import GitHubSetup, GitHubSetupArgs

    github_setup = GitHubSetup(
        "github",
        GitHubSetupArgs(
            github=settings.github,
            server=settings.server,
            paths=settings.paths,
        ),
    )
    server_waits_for.append(github_setup)

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

# No notification here: a success message from the program would go out before the workflow's
# smoke test. The workflows call `oncall.py notify` once, at the end of each run (ops/notify.py).

pulumi.export("image", server.image)
pulumi.export("backup_id", server.backup_id)
pulumi.export("previous_image", server.previous_image)
pulumi.export("url", settings.app.public_url)
pulumi.export("mode", "restore" if settings.is_restore else "deploy")
