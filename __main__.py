"""Deploys MCP: GitHub setup, image, then backup -> deploy -> release on the server over SSH."""

import pulumi

from components.github_repo import GitHubSetup, GitHubSetupArgs
from components.image import AppImage
from components.notification import SlackNotification
from components.server import ServerDeployment, ServerDeploymentArgs
from components.settings import load_settings

settings = load_settings()

if settings.github is not None:
    GitHubSetup(
        "github",
        GitHubSetupArgs(
            github=settings.github,
            server=settings.server,
            paths=settings.paths,
            slack_webhook_url=settings.slack_webhook_url,
        ),
    )

# A restore redeploys what the backup's manifest names, so it needs no image.
image_ref: pulumi.Input[str] = (
    "" if settings.is_restore else AppImage("app", settings.image).reference
)

server = ServerDeployment(
    "server",
    ServerDeploymentArgs(
        server=settings.server,
        paths=settings.paths,
        app=settings.app,
        image=settings.image,
        image_ref=image_ref,
        env_file_content=settings.env_file_content,
        restore_backup=settings.restore_backup,
    ),
)

if settings.slack_webhook_url is not None:
    SlackNotification(
        "slack",
        webhook_url=settings.slack_webhook_url,
        deployed_image=server.image,
        release=settings.release,
        public_url=settings.app.public_url,
        opts=pulumi.ResourceOptions(depends_on=server.steps),
    )

pulumi.export("image", server.image)
pulumi.export("backup_id", server.backup_id)
pulumi.export("previous_image", server.previous_image)
pulumi.export("url", settings.app.public_url)
pulumi.export("mode", "restore" if settings.is_restore else "deploy")
