"""Optional Slack message after a successful deploy: commit, author and URL.

It runs on the machine that runs `pulumi up` (the Actions runner), not on the server. The webhook
URL is a secret, so it travels to curl on stdin (`curl --config -`), never on a command line.
"""

from __future__ import annotations

import json

import pulumi
from pulumi_command import local

from components.settings import ReleaseInfo

NOTIFY_COMMAND = "curl --fail --silent --show-error --max-time 20 --config -"


def slack_message(status: str, image_ref: str, release: ReleaseInfo, url: str) -> str:
    """The text the seed's notifications carried, in English."""
    without_digest = image_ref.split("@", 1)[0]
    name, _, tag = without_digest.rpartition(":")
    commit = tag if name and "/" not in tag else without_digest
    lines = [
        f"Deployment to Hostinger: {status}",
        f"Commit: {commit}" + (f" ({release.message})" if release.message else ""),
        f"Author: {release.author}",
        f"Image: {image_ref}",
        f"URL: {url}",
    ]
    return "\n".join(lines)


def _curl_quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def curl_config(webhook_url: str, text: str) -> str:
    """A curl config file (read from stdin) that POSTs `text` to the Slack webhook."""
    payload = json.dumps({"text": text})
    return "\n".join(
        [
            f"url = {_curl_quote(webhook_url)}",
            'header = "Content-Type: application/json"',
            f"data = {_curl_quote(payload)}",
            "",
        ]
    )


class SlackNotification(pulumi.ComponentResource):
    """Posts one message per deployed image (re-runs only when the deployed image changes)."""

    def __init__(
        self,
        name: str,
        webhook_url: pulumi.Output[str],
        deployed_image: pulumi.Output[str],
        release: ReleaseInfo,
        public_url: str,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("mcp:deploy:SlackNotification", name, None, opts)
        stdin = pulumi.Output.secret(
            pulumi.Output.all(webhook_url, deployed_image).apply(
                lambda values: curl_config(
                    values[0], slack_message("success", values[1], release, public_url)
                )
            )
        )
        self.command = local.Command(
            f"{name}-post",
            create=NOTIFY_COMMAND,
            stdin=stdin,
            triggers=[deployed_image],
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.register_outputs({})
