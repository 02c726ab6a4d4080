"""A loopback stand-in for the Telegram Bot API's `sendMessage` (https://core.telegram.org/bots/api),
so a stack's `mcp:telegram.apiUrl` can point here and a notification is received and checked
instead of leaving the machine.

It checks each request as the Bot API would, and answers as it does:

* the path is `/bot<token>/sendMessage` with the one token it was given (another token: 401
  `Unauthorized`; another method or path: 404 `Not Found`);
* the body is JSON or a form (`application/x-www-form-urlencoded`), with `chat_id` equal to
  the chat it was given (else 400 `Bad Request: chat not found`) and a `text` of 1 to 4096
  characters (else 400);
* the answer is `{"ok": true, "result": {"message_id": N, "chat": {"id": ...}, "text": ...}}`.

Every message taken is in `messages`, every request refused in `refused`.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs


@dataclass(frozen=True)
class Message:
    chat_id: str
    text: str
    content_type: str
    body: dict[str, Any]


class TelegramStandIn:
    def __init__(self, token: str, chat_id: str) -> None:
        self.token = token
        self.chat_id = chat_id
        self.messages: list[Message] = []
        self.refused: list[tuple[int, str]] = []  # (status, description)
        self.paths: list[str] = []  # every path asked, to check what a client sent
        standin = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                standin.paths.append(self.path)
                status, answer = standin.answer(
                    self.path, self.headers.get("Content-Type") or "", raw
                )
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                self.do_POST()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def api_url(self) -> str:
        """What `mcp:telegram.apiUrl` names (http:// is accepted on loopback only)."""
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def _refuse(self, status: int, description: str) -> tuple[int, dict[str, Any]]:
        self.refused.append((status, description))
        return status, {"ok": False, "error_code": status, "description": description}

    def answer(self, path: str, content_type: str, raw: bytes) -> tuple[int, dict[str, Any]]:
        prefix, _, method = path.rpartition("/")
        if not prefix.startswith("/bot") or method != "sendMessage":
            return self._refuse(404, "Not Found")
        if prefix.removeprefix("/bot") != self.token:
            return self._refuse(401, "Unauthorized")
        kind = content_type.split(";", 1)[0].strip().lower()
        try:
            if kind == "application/json":
                body = json.loads(raw.decode("utf-8"))
            elif kind == "application/x-www-form-urlencoded":
                body = {k: v[0] for k, v in parse_qs(raw.decode("utf-8")).items()}
            else:
                return self._refuse(400, f"Bad Request: unsupported content type {kind!r}")
        except (UnicodeDecodeError, ValueError):
            return self._refuse(400, "Bad Request: can't parse the request body")
        if not isinstance(body, dict):
            return self._refuse(400, "Bad Request: the body must be an object")
        if str(body.get("chat_id", "")) != self.chat_id:
            return self._refuse(400, "Bad Request: chat not found")
        text = body.get("text")
        if not isinstance(text, str) or not text.strip():
            return self._refuse(400, "Bad Request: message text is empty")
        if len(text) > 4096:
            return self._refuse(400, "Bad Request: message is too long")
        self.messages.append(Message(str(body["chat_id"]), text, kind, body))
        result = {"message_id": len(self.messages), "chat": {"id": self.chat_id}, "text": text}
        return 200, {"ok": True, "result": result}

    def start(self) -> TelegramStandIn:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
