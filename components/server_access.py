"""SSH to the deploy server from an engineer's terminal or a CI job, outside the Pulumi
engine: for `rollback.py`, which reads the server's release ledger before it decides.

It uses the stack's own config, validated by the same settings as the program: the host,
port, user and pinned host key (`mcp:server`), the deploy key (`mcp:sshPrivateKey`, a secret,
decrypted through the Automation API) and the deploy dir. The system `ssh` client runs with
a known_hosts file holding only the pinned key (a different key refuses to connect) and the
key in a private temporary directory deleted afterwards; never the user's own ssh config.
(The `command` provider connects the same way; paramiko would be one more dependency for
one read-only command.)
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import subprocess
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from components.settings import NAMESPACE, ConfigError, MappingConfigSource, load_server_settings

SSH_TIMEOUT_S = 180


class ServerAccessError(Exception):
    """The server could not be reached or refused the command; the message says which."""


@dataclass(frozen=True)
class ServerAccess:
    host: str
    port: int
    user: str
    host_key: str  # "<type> <base64>", pinned
    private_key: str = ""
    deploy_dir: str = ""
    scripts_dir: str = ""  # where the program installed the remote scripts

    def __repr__(self) -> str:  # never print the key
        return f"ServerAccess({self.user}@{self.host}:{self.port}, {self.deploy_dir})"

    def known_hosts_line(self) -> str:
        name = self.host if self.port == 22 else f"[{self.host}]:{self.port}"
        return f"{name} {self.host_key}\n"

    @contextlib.contextmanager
    def ssh_argv(self, words: list[str]) -> Iterator[list[str]]:
        """The `ssh` argv running `words` (quoted) on the server, valid inside the block: the key
        and a known_hosts file holding only the pinned key live in a private temporary directory
        deleted afterwards."""
        with tempfile.TemporaryDirectory(prefix="mcp-ssh-") as folder:
            key = Path(folder) / "key"
            key.touch(mode=0o600)
            key.write_text(
                self.private_key if self.private_key.endswith("\n") else self.private_key + "\n"
            )
            known_hosts = Path(folder) / "known_hosts"
            known_hosts.write_text(self.known_hosts_line())
            yield [
                "ssh", "-F", "/dev/null", "-i", str(key), "-p", str(self.port),
                "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes",
                "-o", "StrictHostKeyChecking=yes", "-o", f"UserKnownHostsFile={known_hosts}",
                "-o", "GlobalKnownHostsFile=/dev/null", "-o", "ConnectTimeout=20",
                "-o", "LogLevel=ERROR",
                f"{self.user}@{self.host}", "--", shlex.join(words),
            ]  # fmt: skip

    def stream(self, words: list[str]) -> int:
        """Runs `words` on the server with its stdout and stderr going to ours as they come
        (e.g. `logs --follow`, until Ctrl-C); returns the exit code."""
        with self.ssh_argv(words) as argv:
            try:
                return subprocess.run(
                    argv, stdin=subprocess.DEVNULL, check=False, env={**os.environ, "LC_ALL": "C"}
                ).returncode
            except KeyboardInterrupt:
                return 130
            except OSError as error:
                raise ServerAccessError(
                    f"ssh {self.user}@{self.host}:{self.port} failed: {error}"
                ) from error

    def run(self, words: list[str], *, timeout: float = SSH_TIMEOUT_S) -> str:
        """Runs `words` (quoted) on the server; returns stdout. Fails naming the host and the
        script's last error line."""
        with self.ssh_argv(words) as argv:
            try:
                proc = subprocess.run(
                    argv,
                    capture_output=True,
                    text=True,
                    timeout=timeout,
                    stdin=subprocess.DEVNULL,
                    check=False,
                    env={**os.environ, "LC_ALL": "C"},
                )
            except (OSError, subprocess.TimeoutExpired) as error:
                raise ServerAccessError(
                    f"ssh {self.user}@{self.host}:{self.port} failed: {error}"
                ) from error
        if proc.returncode != 0:
            last = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
            hint = ""
            if "Host key verification failed" in proc.stderr:
                hint = (
                    f" The server's host key is not the one pinned in {NAMESPACE}:server.hostKey:"
                    " check it out of band before changing the pin."
                )
            raise ServerAccessError(
                f"`{words[0] if words else ''}` on {self.user}@{self.host}:{self.port} exited "
                f"{proc.returncode}: {last}{hint}"
            )
        return proc.stdout


def config_source(config: Mapping[str, Any]) -> MappingConfigSource:
    """The settings' view of `pulumi config --show-secrets --json`-like values
    (`{"mcp:server": {...}, ...}`, objects as JSON text or dicts)."""
    values: dict[str, Any] = {}
    secret_keys: list[str] = []
    prefix = f"{NAMESPACE}:"
    for full_key, raw in config.items():
        if not full_key.startswith(prefix):
            continue
        key = full_key[len(prefix) :]
        value, secret = raw, False
        if isinstance(raw, Mapping) and "value" in raw:
            value, secret = raw["value"], bool(raw.get("secret"))
        if isinstance(value, str) and value[:1] in "{[" and key.count(".") == 0:
            with contextlib.suppress(ValueError):
                value = json.loads(value)
        values[key] = value
        if secret:
            secret_keys.append(key)
    return MappingConfigSource(values, secret_keys)


def from_stack_config(config: Mapping[str, Any]) -> ServerAccess:
    """From `pulumi config --show-secrets --json`-like values (see `config_source`),
    validated by the program's own settings."""
    source = config_source(config)
    try:
        server, paths = load_server_settings(source)
    except ConfigError as error:
        raise ServerAccessError(f"the stack's config is not valid: {error}") from error
    private_key = source.get("sshPrivateKey")
    if not isinstance(private_key, str) or not private_key:
        raise ServerAccessError(f"{NAMESPACE}:sshPrivateKey is not set in the stack's config")
    return ServerAccess(
        host=server.host,
        port=server.port,
        user=server.user,
        host_key=server.host_key,
        private_key=private_key,
        deploy_dir=paths.deploy_dir.rstrip("/"),
        scripts_dir=paths.scripts_dir,
    )
