"""backup.sh, restore.sh, healthcheck.sh and lib.sh on the local machine, no server.

docker and docker-compose are replaced by stubs on PATH (tests/scripts/conftest.py) so that
"what is running" is under the test's control; tar, gzip, flock, df, du, curl and the file
system are real. The real-Docker paths are covered by tests/integration/test_remote_scripts.py.
"""

from __future__ import annotations

import datetime
import http.server
import io
import json
import os
import subprocess
import tarfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ._helpers import REMOTE, run_script

COMPOSE = "docker-compose.production.yml"


@pytest.fixture
def target(tmp_path: Path) -> tuple[Path, Path]:
    deploy = tmp_path / "mcp"
    backups = tmp_path / "mcp-backups"
    (deploy / "data").mkdir(parents=True)
    backups.mkdir()
    (deploy / COMPOSE).write_text("services: {}\n")
    (deploy / "data" / "items.txt").write_text("first\n")
    (deploy / ".env.production").write_text("SECRET=s3cr3t\n")
    (deploy / ".deploy" / "bin").mkdir(parents=True)
    (deploy / ".deploy" / "bin" / "marker").write_text("not archived\n")
    return deploy, backups


def backup(deploy: Path, backups: Path, env: dict[str, str], *extra: str):
    return run_script(
        "backup.sh",
        "--deploy-dir",
        str(deploy),
        "--backup-dir",
        str(backups),
        "--keep",
        "3",
        "--service",
        "mcp-api-prod",
        "--compose-file",
        COMPOSE,
        *extra,
        env=env,
    )


def archives(backups: Path) -> list[Path]:
    return sorted(backups.glob("mcp-backup-*.tar.gz"))


def manifest_of(archive: Path) -> dict[str, str]:
    with tarfile.open(archive) as tar:
        member = tar.extractfile("./.mcp-backup-manifest")
        assert member is not None
        text = member.read().decode()
    return dict(line.split("=", 1) for line in text.splitlines())


def test_backup_nothing_running(target, stub_path) -> None:
    deploy, backups = target
    result = backup(deploy, backups, stub_path)
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert set(out) == {"backup_id", "archive", "previous_image"}
    assert out["previous_image"] == ""
    archive = Path(out["archive"])
    assert archive == backups / f"mcp-backup-{out['backup_id']}.tar.gz"
    assert archive.stat().st_mode & 0o777 == 0o600
    subprocess.run(["gzip", "-t", str(archive)], check=True)
    names = subprocess.run(
        ["tar", "-tzf", str(archive)], check=True, capture_output=True, text=True
    ).stdout.split()
    assert "./.mcp-backup-manifest" in names
    assert "./data/items.txt" in names and "./.env.production" in names
    assert not [n for n in names if n.startswith("./.deploy")], names
    manifest = manifest_of(archive)
    assert manifest["image"] == ""
    assert manifest["compose_file"] == COMPOSE
    assert manifest["service"] == "mcp-api-prod"
    assert manifest["host"]
    assert manifest["created_at"].endswith("Z")
    assert "nothing deployed yet" in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("[backup] done:")
    assert all(line.startswith("[backup] ") for line in result.stderr.splitlines())
    assert not list(backups.glob(".*tmp")), "temp file left behind"


def test_backup_records_running_container_image(target, stub_path) -> None:
    deploy, backups = target
    (deploy / ".env").write_text("MCP_HTTP_PORT=8001\nMCP_IMAGE=127.0.0.1:5000/mcp/app:old\n")
    env = {**stub_path, "STUB_CID": "abc123", "STUB_IMAGE": "127.0.0.1:5000/mcp/app:v7"}
    result = backup(deploy, backups, env)
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["previous_image"] == "127.0.0.1:5000/mcp/app:v7"
    assert manifest_of(Path(out["archive"]))["image"] == "127.0.0.1:5000/mcp/app:v7"
    calls = Path(stub_path["STUB_CALLS"]).read_text()
    assert f"docker-compose -p mcp -f {deploy}/{COMPOSE} ps -q mcp-api-prod" in calls


def test_backup_falls_back_to_env_image(target, stub_path) -> None:
    deploy, backups = target
    (deploy / ".env").write_text("MCP_HTTP_PORT=8001\nMCP_IMAGE=127.0.0.1:5000/mcp/app:old\n")
    env = {**stub_path, "STUB_CID": "abc123", "STUB_RUNNING": "false"}
    result = backup(deploy, backups, env)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["previous_image"] == "127.0.0.1:5000/mcp/app:old"
    assert "using MCP_IMAGE from" in result.stderr


def test_backup_retention_keeps_newest(target, stub_path) -> None:
    deploy, backups = target
    ids = []
    for _ in range(5):
        result = backup(deploy, backups, stub_path)
        assert result.returncode == 0, result.stderr
        ids.append(json.loads(result.stdout)["backup_id"])
    assert len(set(ids)) == 5, "two backups got the same id"
    left = [p.name for p in archives(backups)]
    assert left == [f"mcp-backup-{i}.tar.gz" for i in ids[-3:]]
    # something unrelated in the backup dir is never pruned
    assert "pruned old backup" in result.stderr


def test_backup_not_enough_space(target, stub_path) -> None:
    deploy, backups = target
    result = backup(deploy, backups, stub_path, "--min-free-mb", "999999")
    assert result.returncode == 5, result.stderr
    assert "not enough disk space" in result.stderr
    assert "999999" in result.stderr and "MB free" in result.stderr
    assert list(backups.iterdir()) == []
    calls = Path(stub_path["STUB_CALLS"])
    assert not calls.exists() or calls.read_text() == "", "docker was called before the check"


def test_backup_verification_failure_deletes_file(target, stub_path, tmp_path) -> None:
    bindir = Path(stub_path["PATH"].split(":")[0])
    (bindir / "gzip").write_text(
        '#!/usr/bin/env bash\n[[ $1 == -t ]] && exit 1\nexec /usr/bin/gzip "$@"\n'
    )
    (bindir / "gzip").chmod(0o755)
    deploy, backups = target
    result = backup(deploy, backups, stub_path)
    assert result.returncode == 6, result.stderr
    assert "verification failed" in result.stderr
    assert list(backups.iterdir()) == []


def _hold_lock(deploy: Path, seconds: float) -> subprocess.Popen[bytes]:
    lock = deploy / ".deploy" / "lock"
    (deploy / ".deploy" / "lock.holder").write_text(
        "script=release.sh pid=4242 started=2025-10-17T14:30:25+0000 ssh_client=10.0.0.9 5555 22\n"
    )
    proc = subprocess.Popen(["flock", str(lock), "sleep", str(seconds)])
    deadline = time.time() + 5
    while time.time() < deadline:
        probe = subprocess.run(["flock", "-n", str(lock), "true"], check=False)
        if probe.returncode != 0:
            return proc
        time.sleep(0.05)
    raise AssertionError("could not take the lock")


def test_lock_timeout_names_the_holder(target, stub_path) -> None:
    deploy, backups = target
    holder = _hold_lock(deploy, 30)
    try:
        started = time.time()
        result = backup(deploy, backups, stub_path, "--lock-timeout", "1")
        assert result.returncode == 4, result.stderr
        assert time.time() - started < 10
        assert "another deploy holds the lock" in result.stderr
        assert "release.sh pid=4242" in result.stderr and "10.0.0.9" in result.stderr
        assert result.stdout == ""
        assert archives(backups) == []
    finally:
        holder.kill()
        holder.wait()


def test_lock_waits_for_holder(target, stub_path) -> None:
    deploy, backups = target
    holder = _hold_lock(deploy, 2)
    try:
        result = backup(deploy, backups, stub_path, "--lock-timeout", "30")
        assert result.returncode == 0, result.stderr
        assert "waiting up to 30s" in result.stderr
        assert len(archives(backups)) == 1
        assert not (deploy / ".deploy" / "lock.holder").exists(), "holder file not cleaned"
    finally:
        holder.kill()
        holder.wait()


# ---------------------------------------------------------------- health check


class _Handler(http.server.BaseHTTPRequestHandler):
    status = 200
    body = b'{"status": "ok", "version": "v1", "note": "quote \\" and \\\\ back"}'

    def do_GET(self) -> None:
        self.send_response(self.server.status)  # type: ignore[attr-defined]
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def http_server() -> Iterator[http.server.HTTPServer]:
    server = http.server.HTTPServer(("127.0.0.1", 0), _Handler)
    server.status = 200  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()


def _url(server: http.server.HTTPServer) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}/api/v1/health"


def test_healthcheck_ok_json(http_server) -> None:
    result = run_script(
        "healthcheck.sh", "--url", _url(http_server), "--attempts", "2", "--timeout", "10"
    )
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out == {"healthy": True, "body": _Handler.body.decode()}


def test_healthcheck_500_fails_after_attempts(http_server) -> None:
    http_server.status = 500  # type: ignore[attr-defined]
    started = time.time()
    # 3 tries 3 s apart within 9 s: the deadline leaves room for a loaded machine, so the
    # attempts (not the deadline) end the check.
    result = run_script(
        "healthcheck.sh", "--url", _url(http_server), "--attempts", "3", "--timeout", "9"
    )
    assert result.returncode == 13
    assert time.time() - started < 15
    assert result.stderr.count("not healthy yet") == 3
    assert "500" in result.stderr.splitlines()[-1]
    assert result.stdout == ""


def test_healthcheck_deadline_wins_over_attempts() -> None:
    started = time.time()
    result = run_script(
        "healthcheck.sh", "--url", "http://127.0.0.1:9/", "--attempts", "1000", "--timeout", "3"
    )
    assert result.returncode == 13
    assert time.time() - started < 8
    assert "deadline of 3s" in result.stderr


def test_healthcheck_stops_early_when_container_exited(tmp_path, stub_path) -> None:
    deploy = tmp_path / "mcp"
    deploy.mkdir()
    (deploy / COMPOSE).write_text("services: {}\n")
    env = {**stub_path, "STUB_CID": "abc", "STUB_STATE": "exited 3 0"}
    started = time.time()
    result = run_script(
        "healthcheck.sh",
        "--url",
        "http://127.0.0.1:9/",
        "--attempts",
        "50",
        "--timeout",
        "60",
        "--deploy-dir",
        str(deploy),
        "--compose-file",
        COMPOSE,
        "--service",
        "mcp-api-prod",
        env=env,
    )
    assert result.returncode == 13
    assert time.time() - started < 10
    assert "exited with code 3" in result.stderr
    assert "last 30 log lines" in result.stderr
    assert "logs --no-color --tail=30 mcp-api-prod" in Path(stub_path["STUB_CALLS"]).read_text()


# ---------------------------------------------------------------- restore (files)


def test_restore_swaps_files_and_keeps_deploy_dir(target, stub_path, http_server) -> None:
    deploy, backups = target
    (deploy / ".env").write_text("MCP_HTTP_PORT=8001\nMCP_IMAGE=127.0.0.1:5000/mcp/app:v1\n")
    env = {
        **stub_path,
        "STUB_CID": "abc",
        "STUB_IMAGE": "127.0.0.1:5000/mcp/app:v1",
        "STUB_STATE": "running 0 0",
    }
    first = json.loads(backup(deploy, backups, env).stdout)
    # a later release changed things
    (deploy / "data" / "items.txt").write_text("first\nbroken\n")
    (deploy / "new-file").write_text("x")
    (deploy / ".env").write_text("MCP_HTTP_PORT=8001\nMCP_IMAGE=127.0.0.1:5000/mcp/app:v2\n")
    time.sleep(1)
    assert backup(deploy, backups, env).returncode == 0

    result = run_script(
        "restore.sh",
        "--deploy-dir",
        str(deploy),
        "--backup-dir",
        str(backups),
        "--backup",
        first["backup_id"],
        "--compose-file",
        COMPOSE,
        "--service",
        "mcp-api-prod",
        "--health-url",
        _url(http_server),
        "--attempts",
        "2",
        "--timeout",
        "10",
        env=env,
    )
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    replaced = out.pop("replaced_backup")
    assert out == {"restored_backup": first["backup_id"], "image": "127.0.0.1:5000/mcp/app:v1"}
    # What the restore replaced is a normal backup: restoring it undoes the restore.
    replaced_archive = backups / f"mcp-backup-{replaced}.tar.gz"
    assert replaced_archive in archives(backups)
    assert manifest_of(replaced_archive)["image"] == "127.0.0.1:5000/mcp/app:v1"  # STUB_IMAGE
    with tarfile.open(replaced_archive) as tar:
        member = tar.extractfile("./data/items.txt")
        assert member is not None and member.read() == b"first\nbroken\n"
        assert "./new-file" in tar.getnames()
    assert f"undo with: {deploy}/.deploy/bin/restore.sh --backup {replaced}" in result.stderr
    assert (deploy / "data" / "items.txt").read_text() == "first\n"
    assert not (deploy / "new-file").exists()
    assert not (deploy / ".mcp-backup-manifest").exists()
    assert "MCP_IMAGE=127.0.0.1:5000/mcp/app:v1" in (deploy / ".env").read_text()
    assert "MCP_HTTP_PORT=8001" in (deploy / ".env").read_text()
    assert (deploy / ".deploy" / "bin" / "marker").read_text() == "not archived\n"
    leftovers = [
        p.name
        for p in (deploy / ".deploy").iterdir()
        if p.name.startswith(("restore.", "replaced."))
    ]
    assert leftovers == []
    calls = Path(stub_path["STUB_CALLS"]).read_text()
    assert "down --remove-orphans" in calls and "up -d --remove-orphans" in calls
    assert "-v" not in calls.split("down --remove-orphans")[1].splitlines()[0]


def test_restore_unknown_id_lists_available(target, stub_path, http_server) -> None:
    deploy, backups = target
    first = json.loads(backup(deploy, backups, stub_path).stdout)
    result = run_script(
        "restore.sh",
        "--deploy-dir",
        str(deploy),
        "--backup-dir",
        str(backups),
        "--backup",
        "19990101_000000",
        "--compose-file",
        COMPOSE,
        "--service",
        "mcp-api-prod",
        "--health-url",
        _url(http_server),
        "--attempts",
        "2",
        "--timeout",
        "10",
        env=stub_path,
    )
    assert result.returncode == 12
    assert "19990101_000000" in result.stderr and first["backup_id"] in result.stderr
    assert (deploy / "data" / "items.txt").read_text() == "first\n"


def test_restore_corrupt_archive(target, stub_path, http_server) -> None:
    deploy, backups = target
    (backups / "mcp-backup-20250101_000000.tar.gz").write_bytes(b"not a gzip")
    result = run_script(
        "restore.sh",
        "--deploy-dir",
        str(deploy),
        "--backup-dir",
        str(backups),
        "--backup",
        "latest",
        "--compose-file",
        COMPOSE,
        "--service",
        "mcp-api-prod",
        "--health-url",
        _url(http_server),
        "--attempts",
        "2",
        "--timeout",
        "10",
        env=stub_path,
    )
    assert result.returncode == 12
    assert "gzip" in result.stderr
    assert (deploy / "data" / "items.txt").read_text() == "first\n"


# ---------------------------------------------------------------- lib.sh


@pytest.mark.parametrize(
    "value",
    [
        "plain",
        'quo"te',
        "back\\slash",
        "new\nline\ttab\r",
        "ctl\x01\x1f\x7f",
        "amp & and $x",
        "ünïcødé ✓",
        "",
        "'single'",
    ],
)
def test_json_object_escapes(value: str) -> None:
    script = f'source "{REMOTE}/lib.sh"; json_object key "$1" "=flag" true'
    result = subprocess.run(
        ["bash", "-c", script, "bash", value],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "LC_ALL": "C.UTF-8"},
    )
    assert result.stdout.count("\n") == 1
    assert json.loads(result.stdout) == {"key": value, "flag": True}


# ---------------------------------------------------------------- release: corrupt backup

CORRUPTING_TAR = """#!/usr/bin/env bash
# Test wrapper of tar: creates the archive with the real tar, then damages it (STUB_TAR_DAMAGE).
REAL_TAR=%(real)s
"$REAL_TAR" "$@" || exit $?
[[ " $* " == *" -czf "* ]] || exit 0
out=""
prev=""
for a; do [[ $prev == -czf ]] && out=$a; prev=$a; done
case ${STUB_TAR_DAMAGE:-} in
  truncate) truncate -s $(( $(stat -c %%s "$out") / 2 )) "$out" ;;
  not-a-tar) head -c 4096 /dev/urandom | gzip -c >"$out" ;;
  no-manifest) d=$(mktemp -d); echo x >"$d/x"; "$REAL_TAR" -czf "$out" -C "$d" ./x; rm -rf "$d" ;;
esac
"""


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        ("truncate", "not a valid gzip file"),
        ("not-a-tar", "not a readable tar archive"),
        ("no-manifest", "has no .mcp-backup-manifest manifest"),
    ],
)
def test_release_refuses_to_switch_when_its_backup_is_corrupt(
    target, stub_path, http_server, damage: str, reason: str
) -> None:
    """Issue 10 item 5: a corrupt archive must never be the rollback target of a release:
    release.sh verifies it (gzip, tar listing, manifest) and changes nothing."""
    deploy, backups = target
    staged = deploy / ".deploy" / "staged"
    staged.mkdir(parents=True)
    (staged / "IMAGE").write_text("127.0.0.1:5000/mcp/app:v2\n")
    (staged / COMPOSE).write_text("services: {new: {}}\n")
    live_compose = (deploy / COMPOSE).read_text()
    bindir = Path(stub_path["PATH"].split(":", 1)[0])
    real_tar = subprocess.run(["bash", "-c", "command -v tar"], capture_output=True, text=True)
    (bindir / "tar").write_text(CORRUPTING_TAR % {"real": real_tar.stdout.strip()})
    (bindir / "tar").chmod(0o755)
    env = {**stub_path, "STUB_TAR_DAMAGE": damage, "STUB_IMAGE": "127.0.0.1:5000/mcp/app:v1"}
    result = run_script(
        "release.sh",
        "--deploy-dir",
        str(deploy),
        "--compose-file",
        COMPOSE,
        "--service",
        "mcp-api-prod",
        "--health-url",
        _url(http_server),
        "--attempts",
        "2",
        "--timeout",
        "10",
        "--backup-dir",
        str(backups),
        "--keep",
        "3",
        env=env,
    )
    assert result.returncode == 6, result.stderr
    assert result.stdout == ""
    last = result.stderr.strip().splitlines()[-1]
    assert "backup verification failed" in last and reason in last
    assert "refusing to switch to 127.0.0.1:5000/mcp/app:v2" in last
    assert "nothing was changed" in last
    # Nothing changed: live files untouched, nothing started, no archive (good or bad) left.
    assert (deploy / COMPOSE).read_text() == live_compose
    assert not (deploy / ".env").exists()
    calls = Path(stub_path["STUB_CALLS"]).read_text()
    assert " up " not in calls and " down" not in calls
    assert list(backups.iterdir()) == []


# ---------------------------------------------------------------- backup ids and retention


def _forge(source: Path, dest: Path, *, created_at: str | None) -> Path:
    """A copy of archive `source` as `dest` whose manifest says `created_at` (None: no such
    line, like the manifests of older versions). The manifest is written last, as they were."""
    with tarfile.open(source) as tar:
        members = [(m, tar.extractfile(m).read() if m.isfile() else None) for m in tar]
    with tarfile.open(dest, "w:gz") as out:
        manifest = b""
        for member, data in members:
            if member.name == "./.mcp-backup-manifest":
                lines = [
                    line
                    for line in data.decode().splitlines()
                    if not line.startswith("created_at=")
                ]
                if created_at is not None:
                    lines.append(f"created_at={created_at}")
                manifest = ("\n".join(lines) + "\n").encode()
                continue
            out.addfile(member, io.BytesIO(data) if data is not None else None)
        info = tarfile.TarInfo("./.mcp-backup-manifest")
        info.size = len(manifest)
        out.addfile(info, io.BytesIO(manifest))
    dest.chmod(0o600)
    return dest


def test_backup_ids_are_utc_whatever_the_server_time_zone(target, stub_path) -> None:
    """Issue 10 item 6: ids in local time misorder around a DST change."""
    deploy, backups = target
    before = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
    result = backup(deploy, backups, {**stub_path, "TZ": "XXX-14"})  # UTC+14
    after = datetime.datetime.now(datetime.UTC)
    assert result.returncode == 0, result.stderr
    backup_id = json.loads(result.stdout)["backup_id"]
    made = datetime.datetime.strptime(backup_id, "%Y%m%d_%H%M%S").replace(tzinfo=datetime.UTC)
    assert before <= made <= after, (backup_id, before, after)
    created = manifest_of(archives(backups)[0])["created_at"]
    assert created == made.strftime("%Y-%m-%dT%H:%M:%SZ")


def test_future_named_archive_never_prunes_the_new_one_nor_is_latest(
    target, stub_path, http_server
) -> None:
    """Issue 10 item 6: an archive named in the future (wrong clock) made the backup step prune
    the archive it had just written, and `--backup latest` picked it."""
    deploy, backups = target
    first = json.loads(backup(deploy, backups, stub_path).stdout)["backup_id"]
    source = backups / f"mcp-backup-{first}.tar.gz"
    future = _forge(
        source, backups / "mcp-backup-20990101_000000.tar.gz", created_at="2020-01-01T00:00:00Z"
    )
    legacy = _forge(source, backups / "mcp-backup-20980101_000000.tar.gz", created_at=None)
    os.utime(legacy, (1_500_000_000, 1_500_000_000))  # 2017: older than everything else
    source.unlink()
    (deploy / "data" / "items.txt").write_text("newest\n")

    result = backup(deploy, backups, stub_path, "--keep", "2")
    assert result.returncode == 0, result.stderr
    newest = json.loads(result.stdout)["backup_id"]
    # Kept: the new one, and the newest other by manifest time (the future-named one, made
    # 2020); pruned: the one whose older manifest has no created_at (mtime 2017).
    assert [p.name for p in archives(backups)] == [
        f"mcp-backup-{newest}.tar.gz",
        "mcp-backup-20990101_000000.tar.gz",
    ]
    assert "pruned old backup" in result.stderr and legacy.name in result.stderr
    assert future.exists()

    result = backup(deploy, backups, stub_path, "--keep", "1")
    assert result.returncode == 0, result.stderr
    only = json.loads(result.stdout)["backup_id"]
    assert [p.name for p in archives(backups)] == [f"mcp-backup-{only}.tar.gz"]

    # `latest` is the newest by manifest time, not by name.
    _forge(
        backups / f"mcp-backup-{only}.tar.gz",
        backups / "mcp-backup-20990101_000000.tar.gz",
        created_at="2020-01-01T00:00:00Z",
    )
    env = {**stub_path, "STUB_CID": "abc", "STUB_STATE": "running 0 0"}
    env["STUB_IMAGE"] = "127.0.0.1:5000/mcp/app:v1"
    result = run_script(
        "restore.sh",
        "--deploy-dir",
        str(deploy),
        "--backup-dir",
        str(backups),
        "--backup",
        "latest",
        "--compose-file",
        COMPOSE,
        "--service",
        "mcp-api-prod",
        "--health-url",
        _url(http_server),
        "--attempts",
        "2",
        "--timeout",
        "10",
        env=env,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["restored_backup"] == only
    assert f"latest backup is {only}" in result.stderr
