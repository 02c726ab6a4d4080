"""Slack message text and the curl config that carries the secret webhook on stdin."""

from __future__ import annotations

import json
import shlex
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

from components.notification import NOTIFY_COMMAND, curl_config, slack_message
from components.settings import ReleaseInfo


def test_message_names_commit_author_and_url() -> None:
    text = slack_message(
        "success",
        "ghcr.io/feustey/mcp:3f2c1ab@sha256:" + "a" * 64,
        ReleaseInfo(author="feustey", message="feat: nouvelle fonctionnalité"),
        "https://api.dazno.de",
    )
    assert text.splitlines()[0] == "Deployment to Hostinger: success"
    assert "Commit: 3f2c1ab (feat: nouvelle fonctionnalité)" in text
    assert "Author: feustey" in text
    assert "URL: https://api.dazno.de" in text


def test_curl_posts_exactly_the_json_body_to_the_webhook() -> None:
    """Runs the real curl with the generated config against a throw-away local HTTP server."""
    received: list[tuple[str, str, bytes]] = []

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append((self.path, self.headers["Content-Type"], body))
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Hook)
    thread = threading.Thread(target=server.handle_request, daemon=True)
    thread.start()
    text = 'say "hi" \\ back\nnext line'
    webhook = f"http://127.0.0.1:{server.server_port}/services/T0/B0/secret"
    result = subprocess.run(
        shlex.split(NOTIFY_COMMAND),
        input=curl_config(webhook, text),
        capture_output=True,
        text=True,
        timeout=30,
    )
    thread.join(timeout=10)
    server.server_close()
    assert result.returncode == 0, result.stderr
    ((path, content_type, body),) = received
    assert path == "/services/T0/B0/secret"
    assert content_type == "application/json"
    assert json.loads(body) == {"text": text}


def test_the_command_line_never_holds_the_webhook() -> None:
    assert "hooks" not in NOTIFY_COMMAND
    assert NOTIFY_COMMAND.endswith("--config -")
