"""The disposable local deploy target (`local/server.sh`) as Python: its description, the
sample and proxy images in its registry, fresh deploy targets on it, and plain HTTP probes.

Shared by the integration and e2e tests (their fixtures wrap these) and the benchmark, so
none of them imports another's test modules. Everything here talks to loopback only.
"""

from __future__ import annotations

import base64
import fcntl
import io
import json
import os
import re
import secrets
import shlex
import shutil
import socket
import subprocess
import tarfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SERVER_SH = ROOT / "local" / "server.sh"
APP_DIR = ROOT / "app"
BUILD_SH = APP_DIR / "build.sh"
SAMPLE_COMPOSE = APP_DIR / "docker-compose.production.yml"

COMPOSE_FILE = "docker-compose.production.yml"
SERVICE = "mcp-api-prod"
ENV_FILE = ".env.production"
APP_SECRET_LINE = "APP_SECRET=not-a-real-secret"

# name -> (VERSION, MODE) of the sample images; tag = name
SAMPLE_IMAGES: dict[str, tuple[str, str]] = {
    "v1": ("v1", "ok"),
    "v2": ("v2", "ok"),
    "broken-crash": ("broken-crash", "crash"),
    "broken-500": ("broken-500", "error500"),
    "broken-slow": ("broken-slow", "slow"),
    "writer": ("writer", "writer"),  # healthy; appends to data/stream.log without pause
    # healthy, but every other GET /api/v1/version answers 500 (a canary's gate must stop it)
    "flaky-500": ("flaky-500", "flaky500"),
    # healthy, but every GET /api/v1/version takes 800 ms (a canary's latency gate must stop it)
    "laggy": ("laggy", "laggy"),
}
SAMPLE_REPOSITORY = "mcp/app"

# Loopback only: never send test traffic through a proxy from the environment.
_NO_PROXY_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


# ----------------------------------------------------------------------------- server


@dataclass(frozen=True)
class LocalServer:
    """The local deploy target as printed by `local/server.sh env`."""

    host: str
    ssh_port: int
    user: str
    private_key_path: Path
    host_public_key: str  # "ssh-ed25519 AAAA..." (no host name, no comment)
    known_hosts_path: Path
    registry: str  # "127.0.0.1:5000"
    registry_user: str
    registry_password: str
    base_dir: Path

    @classmethod
    def from_env(cls, env: dict[str, str]) -> LocalServer:
        """From the KEY=VALUE lines of `local/server.sh env` (KeyError names a missing key)."""
        return cls(
            host=env["MCP_LOCAL_HOST"],
            ssh_port=int(env["MCP_LOCAL_SSH_PORT"]),
            user=env["MCP_LOCAL_USER"],
            private_key_path=Path(env["MCP_LOCAL_KEY"]),
            host_public_key=env["MCP_LOCAL_HOST_KEY"],
            known_hosts_path=Path(env["MCP_LOCAL_KNOWN_HOSTS"]),
            registry=env["MCP_LOCAL_REGISTRY"],
            registry_user=env["MCP_LOCAL_REGISTRY_USER"],
            registry_password=Path(env["MCP_LOCAL_REGISTRY_PASSWORD_FILE"]).read_text().strip(),
            base_dir=Path(env["MCP_LOCAL_BASE"]),
        )

    def ssh_args(
        self,
        command: str,
        *,
        key: Path | None = None,
        options: tuple[str, ...] | list[str] = (),
    ) -> list[str]:
        """argv for the real ssh client, strict about the host key, never prompting.

        `options` come first: for ssh the first value of an option wins, so they override
        the defaults below (e.g. `("-o", "UserKnownHostsFile=/other")`).
        """
        return [
            "ssh",
            "-F",
            "/dev/null",  # ignore any ~/.ssh/config of whoever runs the tests
            *options,
            "-i",
            str(key or self.private_key_path),
            "-p",
            str(self.ssh_port),
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            f"UserKnownHostsFile={self.known_hosts_path}",
            "-o",
            "GlobalKnownHostsFile=/dev/null",
            "-o",
            "BatchMode=yes",
            "-o",
            "ConnectTimeout=15",
            "-o",
            "LogLevel=ERROR",
            f"{self.user}@{self.host}",
            command,
        ]

    def ssh(
        self,
        command: str,
        *,
        input: str | None = None,
        timeout: float = 300,
        check: bool = False,
        key: Path | None = None,
        options: tuple[str, ...] | list[str] = (),
    ) -> subprocess.CompletedProcess[str]:
        """Run `command` as the deploy user over SSH; stdin is `input` (or nothing)."""
        proc = subprocess.run(
            self.ssh_args(command, key=key, options=options),
            input=input if input is not None else "",
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"ssh command failed (exit {proc.returncode}): {command}\n"
                f"--- stdout ---\n{proc.stdout}\n--- stderr ---\n{proc.stderr}"
            )
        return proc

    def put_files(self, files: dict[str, tuple[Path, int]], *, timeout: float = 120) -> None:
        """Write each remote path (absolute) with a local file's bytes and the given mode, as the
        deploy user, in one SSH session: a tar archive (base64 on stdin) unpacked at `/`.

        One session instead of one per file: a test that installs the scripts' 30 files paid
        ~9 s of SSH handshakes before it ran anything (issue 21).
        """
        archive = io.BytesIO()
        with tarfile.open(fileobj=archive, mode="w:gz") as tar:
            for remote_path, (source, mode) in sorted(files.items()):
                if not remote_path.startswith("/"):
                    raise ValueError(f"put_files: not an absolute path: {remote_path!r}")
                data = source.read_bytes()
                info = tarfile.TarInfo(remote_path.lstrip("/"))
                info.size, info.mode, info.mtime = len(data), mode, int(time.time())
                tar.addfile(info, io.BytesIO(data))
        # --no-same-owner/--no-overwrite-dir: the deploy user's files, its directories untouched.
        self.ssh(
            "base64 -d | tar -xzf - -C / --no-same-owner --no-overwrite-dir",
            input=base64.b64encode(archive.getvalue()).decode("ascii"),
            check=True,
            timeout=timeout,
        )

    def ssh_popen(self, command: str, **kwargs: Any) -> subprocess.Popen[str]:
        """Start `command` over SSH without waiting (e.g. to kill the session mid-way).

        Defaults: stdin/stdout/stderr are pipes, text mode, own process group (so the test
        can `os.killpg(proc.pid, signal.SIGKILL)`); any Popen keyword overrides them.
        """
        key = kwargs.pop("key", None)
        options = kwargs.pop("options", ())
        kwargs.setdefault("stdin", subprocess.PIPE)
        kwargs.setdefault("stdout", subprocess.PIPE)
        kwargs.setdefault("stderr", subprocess.PIPE)
        kwargs.setdefault("text", True)
        kwargs.setdefault("start_new_session", True)
        return subprocess.Popen(self.ssh_args(command, key=key, options=options), **kwargs)


def _run_server_sh(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    if not SERVER_SH.is_file():
        raise RuntimeError(f"{SERVER_SH} is missing")
    try:
        return subprocess.run(
            ["bash", str(SERVER_SH), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired as exc:
        raise RuntimeError(f"local/server.sh {' '.join(args)} timed out after {timeout}s") from exc


def parse_env_lines(text: str) -> dict[str, str]:
    """KEY=VALUE lines (values may contain spaces and '=') -> dict."""
    env: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep:
            raise ValueError(f"not a KEY=VALUE line: {line!r}")
        env[key.strip()] = value
    return env


# ----------------------------------------------------------------------------- images


def _registry_get(server: LocalServer, path: str, accept: str | None = None) -> bytes | None:
    """GET http://<registry><path> with basic auth; None on 404."""
    request = urllib.request.Request(f"http://{server.registry}{path}")
    token = base64.b64encode(f"{server.registry_user}:{server.registry_password}".encode())
    request.add_header("Authorization", f"Basic {token.decode()}")
    if accept:
        request.add_header("Accept", accept)
    try:
        with _NO_PROXY_OPENER.open(request, timeout=30) as response:
            return response.read()
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return None
        raise


def registry_image_labels(server: LocalServer, repository: str, tag: str) -> dict[str, str] | None:
    """Labels of <registry>/<repository>:<tag> read from the registry, None if no such tag."""
    manifest_raw = _registry_get(
        server,
        f"/v2/{repository}/manifests/{tag}",
        accept=(
            "application/vnd.docker.distribution.manifest.v2+json, "
            "application/vnd.oci.image.manifest.v1+json"
        ),
    )
    if manifest_raw is None:
        return None
    manifest = json.loads(manifest_raw)
    digest = manifest.get("config", {}).get("digest")
    if not digest:  # a manifest list or an old schema: treat as unknown, rebuild
        return None
    config_raw = _registry_get(server, f"/v2/{repository}/blobs/{digest}")
    if config_raw is None:
        return None
    config = json.loads(config_raw)
    return dict((config.get("config") or {}).get("Labels") or {})


def _docker_login_root(server: LocalServer) -> None:
    proc = subprocess.run(
        ["docker", "login", server.registry, "-u", server.registry_user, "--password-stdin"],
        input=server.registry_password,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"docker login {server.registry} failed:\n{proc.stdout}\n{proc.stderr}")


PROXY_BUILD_SH = ROOT / "proxy" / "build.sh"
PROXY_REPOSITORY = "mcp/proxy"
PROXY_TAG = "caddy-2.11.9"


# ----------------------------------------------------------------------------- targets


@dataclass(frozen=True)
class DeployTarget:
    """Fresh deploy + backup directories on the local server, for one test."""

    name: str
    root_dir: Path  # <base>/<name>-<random>
    deploy_dir: Path  # <root_dir>/mcp
    backup_dir: Path  # <root_dir>/mcp-backups
    http_port: int
    project: str  # unique compose project name: always pass it (--project / -p)
    health_url: str
    compose_file: str = COMPOSE_FILE
    service: str = SERVICE
    env_file: str = ENV_FILE

    def compose_command(self, args: str, *, image: str = "unused") -> str:
        """Shell command (for LocalServer.ssh) running compose in the deploy dir.

        Exports MCP_IMAGE, MCP_UID and MCP_GID like the remote scripts do; uses
        `docker compose` when present, else `docker-compose`.
        """
        return (
            f"cd {shlex.quote(str(self.deploy_dir))} && "
            f"export MCP_IMAGE={shlex.quote(image)} MCP_UID=$(id -u) MCP_GID=$(id -g) && "
            "if docker compose version >/dev/null 2>&1; then dc='docker compose'; "
            "else dc=docker-compose; fi && "
            f"$dc -p {shlex.quote(self.project)} -f {shlex.quote(self.compose_file)} {args}"
        )


_used_ports: set[int] = set()


# Below Linux's ephemeral range (32768-60999): a port the kernel picks (bind to port 0) is one
# it also hands to outgoing connections, and the other test worker's ssh, docker and pip took
# one between this choice and the container's bind ("address already in use"). Each xdist
# worker draws from its own slice, so no two workers pick the same port.
_PORT_RANGE = (20000, 32768)


def _port_range() -> range:
    low, high = _PORT_RANGE
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw")
    workers = os.environ.get("PYTEST_XDIST_WORKER_COUNT", "")
    if not (worker.isdigit() and workers.isdigit() and int(workers) > 0):
        return range(low, high)
    size = (high - low) // int(workers)
    start = low + (int(worker) % int(workers)) * size
    return range(start, start + size)


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now and not handed out before in this session, outside the
    kernel's ephemeral range."""
    candidates = _port_range()
    for _ in range(200):
        port = secrets.choice(candidates)
        if port in _used_ports:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        _used_ports.add(port)
        return port
    raise RuntimeError(f"no free TCP port found on 127.0.0.1 in {candidates}")


def create_deploy_target(server: LocalServer, name: str) -> DeployTarget:
    """Create `<base>/<name>-<random>/{mcp,mcp-backups}` as the deploy user (see module doc)."""
    slug = re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-")[:40] or "target"
    suffix = secrets.token_hex(4)
    root_dir = server.base_dir / f"{slug}-{suffix}"
    deploy_dir = root_dir / "mcp"
    backup_dir = root_dir / "mcp-backups"
    port = free_port()
    target = DeployTarget(
        name=name,
        root_dir=root_dir,
        deploy_dir=deploy_dir,
        backup_dir=backup_dir,
        http_port=port,
        project=f"mcpt-{slug}-{suffix}",
        health_url=f"http://127.0.0.1:{port}/api/v1/health",
    )

    def put(path: Path, content: str, mode: str) -> str:
        b64 = base64.b64encode(content.encode()).decode()
        q = shlex.quote(str(path))
        return f"printf %s {b64} | base64 -d > {q} && chmod {mode} {q}"

    script = " && ".join(
        [
            "set -e",
            "umask 022",
            f"mkdir -p {shlex.quote(str(deploy_dir / 'data'))} {shlex.quote(str(backup_dir))}",
            f"chmod 0700 {shlex.quote(str(backup_dir))}",
            put(deploy_dir / ".env", f"MCP_HTTP_PORT={port}\n", "0644"),
            put(deploy_dir / COMPOSE_FILE, SAMPLE_COMPOSE.read_text(), "0644"),
            put(deploy_dir / ENV_FILE, APP_SECRET_LINE + "\n", "0600"),
        ]
    )
    server.ssh(f"bash -c {shlex.quote(script)}", timeout=60, check=True)
    return target


def destroy_deploy_target(server: LocalServer, target: DeployTarget) -> None:
    """Stop the target's compose project and remove its directories (best effort + verify)."""
    if target.deploy_dir.joinpath(target.compose_file).is_file():
        server.ssh(
            target.compose_command("down --volumes --remove-orphans --timeout 5"), timeout=120
        )
    # Whatever compose did not catch (compose file replaced or removed by the test):
    remove_containers_and_networks(f"label=com.docker.compose.project={target.project}")
    server.ssh(f"rm -rf {shlex.quote(str(target.root_dir))}", timeout=60)
    if target.root_dir.exists():  # e.g. files a container created as root
        shutil.rmtree(target.root_dir, ignore_errors=True)


def _docker_ids(*args: str) -> list[str]:
    return subprocess.run(
        ["docker", *args], capture_output=True, text=True, check=False
    ).stdout.split()


def remove_containers_and_networks(*filters: str) -> None:
    """Removes (best effort) the containers, then the networks, matching any of `filters`
    (`docker ps` filters such as `label=com.docker.compose.project=NAME`)."""
    containers = [cid for f in filters for cid in _docker_ids("ps", "-aq", "--filter", f)]
    if containers:
        subprocess.run(["docker", "rm", "-f", *containers], capture_output=True, check=False)
    networks = [
        nid
        for f in filters
        if f.startswith("label=")
        for nid in _docker_ids("network", "ls", "-q", "--filter", f)
    ]
    if networks:
        subprocess.run(["docker", "network", "rm", *networks], capture_output=True, check=False)


def remove_blue_green(project: str) -> None:
    """What the blue-green strategy starts beside a compose project: the proxy container
    (`<project>-proxy`) and both colours' projects (`<project>-blue`, `<project>-green`)."""
    remove_containers_and_networks(
        f"name=^{project}-proxy$",
        *(f"label=com.docker.compose.project={project}-{colour}" for colour in ("blue", "green")),
    )


# ----------------------------------------------------------------------------- helpers


class HttpProbe:
    """Plain HTTP GETs from the test host, never through a proxy."""

    @staticmethod
    def get(url: str, *, timeout: float = 5) -> tuple[int, str]:
        """(status, body); status 0 when nothing answers."""
        try:
            with _NO_PROXY_OPENER.open(url, timeout=timeout) as response:
                return response.status, response.read().decode(errors="replace")
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode(errors="replace")
        except (urllib.error.URLError, OSError):
            return 0, ""

    @staticmethod
    def post(url: str, data: str, *, timeout: float = 5) -> tuple[int, str]:
        request = urllib.request.Request(url, data=data.encode(), method="POST")
        request.add_header("Content-Type", "text/plain")
        try:
            with _NO_PROXY_OPENER.open(request, timeout=timeout) as response:
                return response.status, response.read().decode(errors="replace")
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode(errors="replace")
        except (urllib.error.URLError, OSError):
            return 0, ""

    def wait(self, url: str, *, expect: int, deadline_s: float = 30) -> tuple[int, str]:
        """Poll `url` until it answers `expect` or the deadline passes; last (status, body)."""
        end = time.monotonic() + deadline_s
        status, body = self.get(url)
        while status != expect and time.monotonic() < end:
            time.sleep(0.5)
            status, body = self.get(url)
        return status, body


def start_local_server() -> LocalServer:
    """`local/server.sh up` (RuntimeError with its output when that fails) + its `env`."""
    if os.geteuid() != 0:
        raise RuntimeError("the local server needs root (local/server.sh up manages daemons/users)")
    up = _run_server_sh("up")
    if up.returncode != 0:
        raise RuntimeError(
            f"local/server.sh up failed (exit {up.returncode}); fix it, or run "
            f"'local/server.sh install' first\n--- stdout ---\n{up.stdout}\n"
            f"--- stderr ---\n{up.stderr}"
        )
    env_proc = _run_server_sh("env")
    if env_proc.returncode != 0:
        raise RuntimeError(f"local/server.sh env failed:\n{env_proc.stdout}\n{env_proc.stderr}")
    try:
        return LocalServer.from_env(parse_env_lines(env_proc.stdout))
    except (KeyError, OSError, ValueError) as exc:
        raise RuntimeError(
            f"cannot use the output of local/server.sh env ({exc!r}):\n{env_proc.stdout}"
        ) from exc


def _source_hash(build_sh: Path) -> str:
    proc = subprocess.run(
        ["bash", str(build_sh), "--source-hash"], capture_output=True, text=True, check=False
    )
    if proc.returncode != 0 or not proc.stdout.strip():
        raise RuntimeError(f"{build_sh} --source-hash failed:\n{proc.stderr}")
    return proc.stdout.strip()


def _build_and_push(argv: list[str], ref: str, timeout: float) -> None:
    proc = subprocess.run(
        argv,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    if proc.returncode != 0:
        raise RuntimeError(
            f"building {ref} failed (exit {proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
        )


@contextmanager
def host_lock(server: LocalServer, name: str) -> Iterator[None]:
    """Exclusive on this machine while the block runs (flock on `<state dir>/<name>.lock`, the
    state dir of local/server.sh, where it keeps the deploy key): the two test workers that use
    the server check and build the same images, one after the other, never both at once."""
    state = server.private_key_path.parent
    with open(state / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def ensure_sample_images(server: LocalServer, names: list[str] | None = None) -> dict[str, str]:
    """Sample app images in the local registry: name -> image ref (`<registry>/mcp/app:<name>`).

    v1, v2 (healthy), broken-crash (exits 1), broken-500 (health 500), broken-slow (health
    503 for 600 s), writer (healthy, writes its data dir continuously; `dump` command). A
    tag is rebuilt only when the registry lacks it or its labels do not match the current
    sources (label mcp.sample.source-sha256) and version/mode.
    """
    with host_lock(server, "sample-images"):
        return _ensure_sample_images(server, names)


def _ensure_sample_images(server: LocalServer, names: list[str] | None) -> dict[str, str]:
    source_hash = _source_hash(BUILD_SH)
    _docker_login_root(server)
    refs: dict[str, str] = {}
    for name in names or list(SAMPLE_IMAGES):
        version, mode = SAMPLE_IMAGES[name]
        ref = f"{server.registry}/{SAMPLE_REPOSITORY}:{name}"
        labels = registry_image_labels(server, SAMPLE_REPOSITORY, name)
        wanted = {
            "mcp.sample.source-sha256": source_hash,
            "org.opencontainers.image.version": version,
            "mcp.sample.mode": mode,
        }
        if labels is None or any(labels.get(k) != v for k, v in wanted.items()):
            _build_and_push(["bash", str(BUILD_SH), version, mode, ref, "--push"], ref, 600)
        refs[name] = ref
    return refs


def ensure_proxy_image(server: LocalServer, *, stock_layout: bool = False) -> str:
    """The blue-green proxy (Caddy, `proxy/build.sh`) in the local registry; its image ref.

    Built here from Caddy's Go module (static, FROM scratch, nothing pulled) and pushed; rebuilt
    only when the registry lacks the tag or its mcp.proxy.source-sha256 label is outdated.
    `stock_layout`: the stand-in for the official caddy image (no launcher, caddy on PATH), which
    the deploy scripts run as they run a stock image; the official one cannot be pulled here.
    """
    with host_lock(server, "proxy-image"):
        return _ensure_proxy_image(server, stock_layout)


def _ensure_proxy_image(server: LocalServer, stock_layout: bool) -> str:
    source_hash = _source_hash(PROXY_BUILD_SH)
    _docker_login_root(server)
    tag = f"{PROXY_TAG}-stock-layout" if stock_layout else PROXY_TAG
    ref = f"{server.registry}/{PROXY_REPOSITORY}:{tag}"
    labels = registry_image_labels(server, PROXY_REPOSITORY, tag)
    if labels is None or labels.get("mcp.proxy.source-sha256") != source_hash:
        layout = ["--stock-layout"] if stock_layout else []
        _build_and_push(["bash", str(PROXY_BUILD_SH), ref, *layout, "--push"], ref, 1800)
    return ref
