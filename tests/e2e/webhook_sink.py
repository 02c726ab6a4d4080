"""An HTTPS endpoint on loopback that records what is POSTed to it: a stand-in for Slack's
incoming webhooks, so a stack can carry a real-looking `https://` webhook URL and its success
message is received here instead of leaving the machine.

Its certificate is self-signed for 127.0.0.1; `ca_bundle` is the file to give curl
(`CURL_CA_BUNDLE`) so the program's notification step trusts it.
"""

from __future__ import annotations

import ssl
import subprocess
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Post:
    path: str
    body: str


class WebhookSink:
    def __init__(self, directory: Path) -> None:
        self.ca_bundle = directory / "webhook-sink.crt"
        key = directory / "webhook-sink.key"
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
             "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
             "-addext", "subjectAltName=IP:127.0.0.1",
             "-keyout", str(key), "-out", str(self.ca_bundle)],
            check=True, capture_output=True,
        )  # fmt: skip
        self.posts: list[Post] = []
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                sink.posts.append(Post(self.path, self.rfile.read(length).decode()))
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.ca_bundle, key)
        self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def url(self, path: str) -> str:
        return f"https://127.0.0.1:{self._server.server_address[1]}{path}"

    def start(self) -> WebhookSink:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
