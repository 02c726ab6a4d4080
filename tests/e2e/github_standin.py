"""A test double of GitHub's REST API, on loopback, for the real `pulumi-resource-github` plugin.

It is not GitHub. It answers only the endpoints this program's GitHub component makes the
provider call, shaped like GitHub's documented responses (REST API 2022-11-28), under the
`/api/v3` prefix that the provider uses for any `base_url` other than api.github.com:

* `GET /orgs/{owner}`: 404, so the owner is treated as a user (the provider's owner lookup,
  made when it is configured, also by `pulumi preview`)
* `GET /repos/{owner}/{repo}`: the repository's id
* `GET /repos/{owner}/{repo}/actions/secrets/public-key`: a real Curve25519 key; secret values
  must arrive sealed to it (libsodium sealed box, as GitHub requires) and are decrypted here so a
  test can compare them
* `GET|PUT|DELETE /repos/{owner}/{repo}/actions/secrets/{name}`
* `POST /repos/{owner}/{repo}/actions/variables`, `GET|PATCH|DELETE .../variables/{name}`
* `GET|PUT|DELETE /repos/{owner}/{repo}/environments/{env}` (wait timer, required reviewers,
  deployment branch policy)
* `POST /repos/{owner}/{repo}/environments/{env}/deployment-branch-policies`,
  `GET|PUT|DELETE .../deployment-branch-policies/{id}`
* `POST /repos/{owner}/{repo}/environments/{env}/variables`, `GET|PATCH|DELETE .../{name}`

`outage = 500` makes every request answer 500 (GitHub down) until it is set back to None.

Every request needs `Authorization: Bearer <token>` (or `token <token>`) with the token it was
started with, else 401 "Bad credentials". Anything else answers 404 and is recorded in
`unhandled`, so a test can tell when the provider calls something this double does not know.
What only real GitHub can prove: permissions of a real token, GitHub's own validation (e.g. that
reviewer ids exist), rate limits, and that GitHub Actions really reads what was written.
"""

from __future__ import annotations

import base64
import json
import re
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote

from nacl.public import PrivateKey, SealedBox

API_PREFIX = "/api/v3"
KEY_ID = "568250167242549743"  # the shape of GitHub's key ids (a string of digits)
_REPO = r"/repos/[^/]+/[^/]+"
# (methods, path under API_PREFIX): everything this double answers.
ROUTES = tuple(
    (methods, re.compile(pattern))
    for methods, pattern in (
        ("GET", r"/orgs/[^/]+"),
        ("GET", _REPO),
        ("GET", _REPO + r"/actions/secrets/public-key"),
        ("GET PUT DELETE", _REPO + r"/actions/secrets/[^/]+"),
        ("POST", _REPO + r"/actions/variables"),
        ("GET PATCH DELETE", _REPO + r"/actions/variables/[^/]+"),
        ("GET PUT DELETE", _REPO + r"/environments/[^/]+"),
        ("POST", _REPO + r"/environments/[^/]+/deployment-branch-policies"),
        ("GET PUT DELETE", _REPO + r"/environments/[^/]+/deployment-branch-policies/[0-9]+"),
        ("POST", _REPO + r"/environments/[^/]+/variables"),
        ("GET PATCH DELETE", _REPO + r"/environments/[^/]+/variables/[^/]+"),
    )
)


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    status: int

    @property
    def is_write(self) -> bool:
        return self.method in ("POST", "PUT", "PATCH", "DELETE")


@dataclass
class StoredSecret:
    encrypted_value: str
    created_at: str
    updated_at: str


@dataclass
class Environment:
    name: str
    wait_timer: int
    can_admins_bypass: bool
    prevent_self_review: bool
    reviewers: list[dict[str, Any]]
    branch_policy: dict[str, bool] | None
    policies: dict[int, dict[str, str]] = field(default_factory=dict)
    variables: dict[str, dict[str, str]] = field(default_factory=dict)


class ApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class GitHubStandIn:
    """One repository, `owner/repo`, served on 127.0.0.1:<random port> until `stop()`."""

    def __init__(self, owner: str, repo: str, token: str) -> None:
        self.owner = owner
        self.repo = repo
        self.token = token
        self.repo_id = 7_000_001
        self._key = PrivateKey.generate()
        self.secrets: dict[str, StoredSecret] = {}
        self.variables: dict[str, dict[str, str]] = {}
        self.environments: dict[str, Environment] = {}
        self.requests: list[Request] = []
        self.unhandled: list[str] = []
        self.outage: int | None = None  # e.g. 500: every request answers it (GitHub down)
        self._next_id = 100
        self._clock = datetime(2025, 1, 1, tzinfo=UTC)
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    # ------------------------------------------------------------------ lifecycle and queries

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/"

    def start(self) -> GitHubStandIn:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def decrypt(self, secret_name: str) -> str:
        """The plain value of a stored secret (only possible with this double's private key)."""
        sealed = base64.b64decode(self.secrets[secret_name].encrypted_value)
        return SealedBox(self._key).decrypt(sealed).decode()

    def writes(self) -> list[Request]:
        return [request for request in self.requests if request.is_write]

    # ------------------------------------------------------------------ the API

    def _now(self) -> str:
        self._clock += timedelta(seconds=1)  # strictly increasing, like a real updated_at
        return self._clock.strftime("%Y-%m-%dT%H:%M:%SZ")

    def _new_id(self) -> int:
        self._next_id += 1
        return self._next_id

    def handle(self, method: str, path: str, body: dict[str, Any]) -> tuple[int, Any]:
        """(status, JSON body or None) for one authenticated request."""
        if not path.startswith(API_PREFIX + "/"):
            raise ApiError(404, "Not Found")
        parts = [unquote(part) for part in path[len(API_PREFIX) + 1 :].split("/")]
        if parts[:1] == ["orgs"] and len(parts) == 2 and method == "GET":
            raise ApiError(404, "Not Found")  # the owner is a user, not an organisation
        if len(parts) < 3 or parts[0] != "repos":
            raise ApiError(404, "Not Found")
        if (parts[1], parts[2]) != (self.owner, self.repo):
            raise ApiError(404, "Not Found")
        rest = parts[3:]
        if not rest and method == "GET":
            return 200, {
                "id": self.repo_id,
                "name": self.repo,
                "full_name": f"{self.owner}/{self.repo}",
                "owner": {"login": self.owner, "type": "User"},
            }
        if rest[:2] == ["actions", "secrets"]:
            return self._secrets(method, rest[2:], body)
        if rest[:2] == ["actions", "variables"]:
            return self._variables(method, rest[2:], body, self.variables)
        if rest[:1] == ["environments"] and len(rest) >= 2:
            return self._environments(method, rest[1], rest[2:], body)
        raise ApiError(404, "Not Found")

    def _secrets(self, method: str, rest: list[str], body: dict[str, Any]) -> tuple[int, Any]:
        if rest == ["public-key"] and method == "GET":
            key = base64.b64encode(bytes(self._key.public_key)).decode()
            return 200, {"key_id": KEY_ID, "key": key}
        if len(rest) != 1:
            raise ApiError(404, "Not Found")
        name = rest[0]
        if method == "GET":
            secret = self.secrets.get(name)
            if secret is None:
                raise ApiError(404, "Not Found")
            return 200, {
                "name": name,
                "created_at": secret.created_at,
                "updated_at": secret.updated_at,
            }
        if method == "PUT":
            if body.get("key_id") != KEY_ID:
                raise ApiError(422, f"key_id must be the repository's public key id {KEY_ID}")
            encrypted = str(body.get("encrypted_value") or "")
            try:
                SealedBox(self._key).decrypt(base64.b64decode(encrypted, validate=True))
            except Exception as exc:  # GitHub cannot read it either
                raise ApiError(422, "encrypted_value is not sealed to the public key") from exc
            now = self._now()
            existing = self.secrets.get(name)
            if existing is None:
                self.secrets[name] = StoredSecret(encrypted, now, now)
                return 201, {}
            existing.encrypted_value, existing.updated_at = encrypted, now
            return 204, None
        if method == "DELETE":
            if self.secrets.pop(name, None) is None:
                raise ApiError(404, "Not Found")
            return 204, None
        raise ApiError(404, "Not Found")

    def _variables(
        self, method: str, rest: list[str], body: dict[str, Any], store: dict[str, dict[str, str]]
    ) -> tuple[int, Any]:
        """A repository's or an environment's variables (`store`)."""
        if not rest and method == "POST":
            name = str(body.get("name") or "")
            if not name or name in store:
                raise ApiError(409, f"variable {name!r} already exists")
            now = self._now()
            store[name] = {
                "name": name,
                "value": str(body.get("value") or ""),
                "created_at": now,
                "updated_at": now,
            }
            return 201, {}
        if len(rest) != 1 or rest[0] not in store:
            raise ApiError(404, "Not Found")
        name = rest[0]
        if method == "GET":
            return 200, store[name]
        if method == "PATCH":
            store[name]["value"] = str(body.get("value") or "")
            store[name]["updated_at"] = self._now()
            return 204, None
        if method == "DELETE":
            del store[name]
            return 204, None
        raise ApiError(404, "Not Found")

    def _environments(
        self, method: str, name: str, rest: list[str], body: dict[str, Any]
    ) -> tuple[int, Any]:
        if not rest:
            if method == "PUT":
                self._put_environment(name, body)
                return 200, self._environment_json(self.environments[name])
            environment = self.environments.get(name)
            if environment is None:
                raise ApiError(404, "Not Found")
            if method == "GET":
                return 200, self._environment_json(environment)
            if method == "DELETE":
                del self.environments[name]
                return 204, None
            raise ApiError(404, "Not Found")
        environment = self.environments.get(name)
        if environment is not None and rest[0] == "variables":
            return self._variables(method, rest[1:], body, environment.variables)
        if environment is None or rest[0] != "deployment-branch-policies":
            raise ApiError(404, "Not Found")
        return self._policies(method, environment, rest[1:], body)

    def _put_environment(self, name: str, body: dict[str, Any]) -> None:
        wait_timer = int(body.get("wait_timer") or 0)
        if not 0 <= wait_timer <= 43200:
            raise ApiError(422, "wait_timer must be between 0 and 43200")
        reviewers = list(body.get("reviewers") or [])
        if len(reviewers) > 6:
            raise ApiError(422, "at most 6 reviewers")
        for reviewer in reviewers:
            if reviewer.get("type") not in ("User", "Team") or not isinstance(
                reviewer.get("id"), int
            ):
                raise ApiError(422, f"invalid reviewer {reviewer!r}")
        policy = body.get("deployment_branch_policy")
        if policy is not None and policy.get("protected_branches") == policy.get(
            "custom_branch_policies"
        ):
            raise ApiError(
                422,
                "deployment_branch_policy: exactly one of protected_branches and "
                "custom_branch_policies must be true",
            )
        existing = self.environments.get(name)
        self.environments[name] = Environment(
            name=name,
            wait_timer=wait_timer,
            can_admins_bypass=bool(body.get("can_admins_bypass", True)),
            prevent_self_review=bool(body.get("prevent_self_review", False)),
            reviewers=reviewers,
            branch_policy=dict(policy) if policy is not None else None,
            policies=existing.policies if existing is not None else {},
            variables=existing.variables if existing is not None else {},
        )

    def _environment_json(self, environment: Environment) -> dict[str, Any]:
        rules: list[dict[str, Any]] = []
        if environment.wait_timer:
            rules.append({"id": 1, "type": "wait_timer", "wait_timer": environment.wait_timer})
        if environment.reviewers:
            rules.append(
                {
                    "id": 2,
                    "type": "required_reviewers",
                    "prevent_self_review": environment.prevent_self_review,
                    "reviewers": [
                        {"type": reviewer["type"], "reviewer": {"id": reviewer["id"]}}
                        for reviewer in environment.reviewers
                    ],
                }
            )
        return {
            "id": 9_000_001,
            "name": environment.name,
            "can_admins_bypass": environment.can_admins_bypass,
            "protection_rules": rules,
            "deployment_branch_policy": environment.branch_policy,
        }

    def _policies(
        self, method: str, environment: Environment, rest: list[str], body: dict[str, Any]
    ) -> tuple[int, Any]:
        policy_allowed = (environment.branch_policy or {}).get("custom_branch_policies")
        if not rest and method == "POST":
            if not policy_allowed:
                raise ApiError(
                    404, "custom deployment branch policies are not enabled for this environment"
                )
            policy_id = self._new_id()
            environment.policies[policy_id] = {
                "name": str(body.get("name") or ""),
                "type": str(body.get("type") or "branch"),
            }
            return 200, {"id": policy_id, **environment.policies[policy_id]}
        if len(rest) != 1 or not rest[0].isdigit() or int(rest[0]) not in environment.policies:
            raise ApiError(404, "Not Found")
        policy_id = int(rest[0])
        if method == "GET":
            return 200, {"id": policy_id, **environment.policies[policy_id]}
        if method == "PUT":
            environment.policies[policy_id]["name"] = str(body.get("name") or "")
            return 200, {"id": policy_id, **environment.policies[policy_id]}
        if method == "DELETE":
            del environment.policies[policy_id]
            return 204, None
        raise ApiError(404, "Not Found")

    # ------------------------------------------------------------------ HTTP plumbing

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        standin = self

        class Handler(BaseHTTPRequestHandler):
            def _serve(self) -> None:
                path = self.path.split("?", 1)[0]
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                status, payload = standin._dispatch(
                    self.command, path, self.headers.get("Authorization") or "", raw
                )
                data = b"" if payload is None else json.dumps(payload).encode()
                self.send_response(status)
                if payload is not None:
                    self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_PUT = do_POST = do_PATCH = do_DELETE = _serve

            def log_message(self, format: str, *args: Any) -> None:
                pass  # requests are recorded in standin.requests

        return Handler

    def _dispatch(self, method: str, path: str, authorization: str, raw: bytes) -> tuple[int, Any]:
        with self._lock:
            status, payload = self._answer(method, path, authorization, raw)
            self.requests.append(Request(method, path, status))
            return status, payload

    def _answer(self, method: str, path: str, authorization: str, raw: bytes) -> tuple[int, Any]:
        docs = "https://docs.github.com/rest"
        if self.outage is not None:
            return self.outage, {"message": "Server Error (an outage)", "documentation_url": docs}
        if re.fullmatch(r"(?:Bearer|token) (\S+)", authorization) is None or (
            authorization.split(" ", 1)[1] != self.token
        ):
            return 401, {"message": "Bad credentials", "documentation_url": docs}
        route = path[len(API_PREFIX) :] if path.startswith(API_PREFIX + "/") else ""
        if not any(
            method in methods.split() and pattern.fullmatch(route) for methods, pattern in ROUTES
        ):
            self.unhandled.append(f"{method} {path}")
            return 404, {"message": "Not Found", "documentation_url": docs}
        try:
            body = json.loads(raw) if raw else {}
            if not isinstance(body, dict):
                raise ApiError(400, "Problems parsing JSON")
            return self.handle(method, path, body)
        except ValueError:
            return 400, {"message": "Problems parsing JSON", "documentation_url": docs}
        except ApiError as error:
            return error.status, {"message": error.message, "documentation_url": docs}
