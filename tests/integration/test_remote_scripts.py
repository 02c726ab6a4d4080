"""remote/*.sh against a real server: real ssh to the deploy user, real Docker, real registry.

The scripts are copied to <deploy-dir>/.deploy/bin/ over ssh exactly as the Pulumi program
does, then run one per step (deploy -> release, which takes its own backup first) through ssh,
secrets on stdin. backup.sh is also run on its own, as on call would.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import tarfile
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from components import remote_commands

if TYPE_CHECKING:  # fixtures come from conftest.py; imported for the annotations only
    from conftest import DeployTarget, HttpProbe, LocalServer

REMOTE = Path(__file__).resolve().parents[2] / "remote"
# Exactly the files the Pulumi program copies to the server.
SCRIPT_FILES = remote_commands.SCRIPT_NAMES
ENV_CONTENT = "APP_SECRET=deployed-by-test\nAPP_GREETING=hello world\n"


def q(value: object) -> str:
    return shlex.quote(str(value))


def one_json_line(proc: subprocess.CompletedProcess[str]) -> dict[str, object]:
    """stdout must be exactly one JSON line."""
    lines = proc.stdout.splitlines()
    assert len(lines) == 1, f"stdout is not one line: {proc.stdout!r}\nstderr:\n{proc.stderr}"
    return json.loads(lines[0])


@dataclass
class Remote:
    """One deploy target driven through the remote scripts over ssh."""

    server: LocalServer
    target: DeployTarget
    images: dict[str, str]
    http: HttpProbe
    # As the e2e stacks' health settings: a broken version fails after ~6 s, not ~12 s.
    attempts: int = 6
    timeout: int = 8
    last_backup: str = ""
    backups: list[str] = field(default_factory=list)

    @property
    def bin(self) -> Path:
        return self.target.deploy_dir / ".deploy" / "bin"

    def install_scripts(self) -> None:
        self.server.put_files(
            {
                str(self.bin / name): (REMOTE / name, 0o644 if name == "lib.sh" else 0o755)
                for name in SCRIPT_FILES
            }
        )

    def common(self) -> str:
        t = self.target
        return (
            f"--deploy-dir {q(t.deploy_dir)} --compose-file {q(t.compose_file)} "
            f"--service {q(t.service)} --project {q(t.project)}"
        )

    def health(self) -> str:
        return (
            f"--health-url {q(self.target.health_url)} --attempts {self.attempts} "
            f"--timeout {self.timeout}"
        )

    def run(self, command: str, *, input: str = "", timeout: float = 300):
        return self.server.ssh(command, input=input, timeout=timeout)

    # -- steps ------------------------------------------------------------------------

    def backup_cmd(self, *, keep: int = 5, backup_dir: Path | None = None, extra: str = "") -> str:
        t = self.target
        return (
            f"{q(self.bin / 'backup.sh')} --deploy-dir {q(t.deploy_dir)} "
            f"--backup-dir {q(backup_dir or t.backup_dir)} --keep {keep} "
            f"--service {q(t.service)} --compose-file {q(t.compose_file)} "
            f"--project {q(t.project)} {extra}"
        )

    def backup(self, **kwargs) -> subprocess.CompletedProcess[str]:
        proc = self.run(self.backup_cmd(**kwargs))
        if proc.returncode == 0:
            self.last_backup = str(one_json_line(proc)["backup_id"])
            self.backups.append(self.last_backup)
        return proc

    def deploy_cmd(self, image: str, extra: str = "") -> str:
        s = self.server
        return (
            f"{q(self.bin / 'deploy.sh')} {self.common()} --image {q(image)} "
            f"--env-file {q(self.target.env_file)} --registry {q(s.registry)} "
            f"--registry-user {q(s.registry_user)} {extra}"
        )

    def deploy_input(self, password: str | None = None) -> str:
        pw = self.server.registry_password if password is None else password
        return f"{pw}\n{ENV_CONTENT}"

    def deploy(self, image: str, password: str | None = None) -> subprocess.CompletedProcess[str]:
        return self.run(self.deploy_cmd(image), input=self.deploy_input(password))

    def release_cmd(self, extra: str = "", *, keep: int = 5) -> str:
        t = self.target
        return (
            f"{q(self.bin / 'release.sh')} {self.common()} {self.health()} "
            f"--env-file {q(t.env_file)} --backup-dir {q(t.backup_dir)} --keep {keep} {extra}"
        )

    def release(self, extra: str = "", *, keep: int = 5) -> subprocess.CompletedProcess[str]:
        """release.sh, which backs up first; records the id of the backup it took."""
        proc = self.run(self.release_cmd(extra, keep=keep))
        found = re.search(r"\[release\] backup ([0-9]{8}_[0-9]{6}) verified", proc.stderr)
        if found:
            self.last_backup = found.group(1)
            self.backups.append(self.last_backup)
        return proc

    def pipeline(self, name: str) -> subprocess.CompletedProcess[str]:
        """deploy -> release of sample image `name` (the program's steps); the first failing
        step's result."""
        proc = self.deploy(self.images[name])
        assert proc.returncode == 0, proc.stderr
        assert one_json_line(proc) == {"staged_image": self.images[name]}
        return self.release()

    def pipeline_shell(self, name: str, lock_timeout: int = 120) -> str:
        """The steps as one shell command (for ssh_popen); stdin = deploy_input()."""
        lt = f"--lock-timeout {lock_timeout}"
        return f"set -e; {self.deploy_cmd(self.images[name], lt)}; {self.release_cmd(lt)}"

    def start(self, command: str, input: str) -> subprocess.Popen[str]:
        """Start `command` over ssh without waiting; stdin is `input` (from a file)."""
        with tempfile.TemporaryFile("w+") as f:
            f.write(input)
            f.seek(0)
            return self.server.ssh_popen(command, stdin=f)

    def restore(self, backup: str) -> subprocess.CompletedProcess[str]:
        t = self.target
        return self.run(
            f"{q(self.bin / 'restore.sh')} --deploy-dir {q(t.deploy_dir)} "
            f"--backup-dir {q(t.backup_dir)} --backup {q(backup)} --compose-file "
            f"{q(t.compose_file)} --service {q(t.service)} --project {q(t.project)} {self.health()}"
        )

    # -- observations -----------------------------------------------------------------

    def version(self) -> str:
        status, body = self.http.get(self.target.health_url)
        if status != 200:
            return f"<{status}>"
        return json.loads(body)["version"]

    def data(self) -> str:
        status, body = self.http.get(self.target.health_url.replace("/health", "/data"))
        assert status == 200, (status, body)
        return body

    def post(self, item: str) -> None:
        status, body = self.http.post(self.target.health_url.replace("/health", "/data"), item)
        assert status == 201, (status, body)

    def container(self) -> tuple[str, str]:
        """(container id, StartedAt) of the service container ('' if none)."""
        ids = subprocess.run(
            [
                "docker",
                "ps",
                "-q",
                "--filter",
                f"label=com.docker.compose.project={self.target.project}",
                "--filter",
                f"label=com.docker.compose.service={self.target.service}",
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
        if not ids:
            return "", ""
        started = subprocess.run(
            ["docker", "inspect", "-f", "{{.State.StartedAt}}", ids[0]],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        return ids[0], started

    def copy_backup(self, source_id: str, new_id: str, **manifest: str) -> str:
        """A copy of backup `source_id` named `new_id`, with manifest lines replaced
        (e.g. image=<a broken image>), as a bad restore target."""
        edits = "; ".join(
            f"sed -i 's|^{key}=.*|{key}={value}|' $d/.mcp-backup-manifest"
            for key, value in manifest.items()
        )
        proc = self.run(
            "set -e; d=$(mktemp -d); "
            f"tar -xzf {q(self.archive(source_id))} -C $d; {edits or 'true'}; "
            f"tar -czf {q(self.archive(new_id))} -C $d .; rm -rf $d"
        )
        assert proc.returncode == 0, proc.stderr
        return new_id

    def archive(self, backup_id: str) -> Path:
        return self.target.backup_dir / f"mcp-backup-{backup_id}.tar.gz"

    def manifest(self, backup_id: str) -> dict[str, str]:
        proc = self.run(f"tar -xzOf {q(self.archive(backup_id))} ./.mcp-backup-manifest")
        assert proc.returncode == 0, proc.stderr
        return dict(line.split("=", 1) for line in proc.stdout.splitlines())

    def wait_lock_free(self, timeout: int = 120) -> None:
        lock = self.target.deploy_dir / ".deploy" / "lock"
        proc = self.run(f"flock -w {timeout} {q(lock)} true", timeout=timeout + 30)
        assert proc.returncode == 0, f"lock still held: {proc.stderr}"

    def wait_holder(self, script: str, timeout: float = 120) -> None:
        holder = self.target.deploy_dir / ".deploy" / "lock.holder"
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if holder.exists() and f"script={script}" in holder.read_text():
                return
            time.sleep(0.2)
        raise AssertionError(f"{script} never took the lock")

    def leftovers(self) -> list[str]:
        d = self.target.deploy_dir / ".deploy"
        names = [
            p.name for p in d.iterdir() if p.name.startswith(("restore.", "replaced.", "manifest."))
        ]
        names += [p.name for p in self.target.backup_dir.iterdir() if p.name.endswith(".tmp")]
        names += [
            p.name
            for p in self.target.deploy_dir.iterdir()
            if p.name.endswith(".release-tmp")
            or (p.name.startswith(".env.") and p.name != self.target.env_file)
        ]
        return names


@pytest.fixture
def remote(local_server, sample_images, make_deploy_target, http, request) -> Remote:
    target = make_deploy_target(request.node.name)
    r = Remote(local_server, target, sample_images, http)
    r.install_scripts()
    return r


def test_deploy_v1_then_v2_keeps_data(remote: Remote) -> None:
    t = remote.target
    proc = remote.pipeline("v1")
    assert proc.returncode == 0, proc.stderr
    result = one_json_line(proc)
    assert result["image"] == remote.images["v1"]
    assert '"version":"v1"' in str(result["health"])
    # The release reports the backup it took first (the stack outputs read these).
    assert result["backup_id"] == remote.last_backup and result["previous_image"] == ""
    assert proc.stderr.strip().splitlines()[-1].startswith("[release] done:")
    assert remote.version() == "v1"
    first_backup = remote.last_backup
    assert remote.manifest(first_backup)["image"] == "", "nothing was running before v1"

    remote.post("saved under v1")
    proc = remote.pipeline("v2")
    assert proc.returncode == 0, proc.stderr
    assert remote.version() == "v2"
    assert remote.data() == "saved under v1\n"
    result = one_json_line(proc)
    assert result["previous_image"] == remote.images["v1"]
    assert result["backup_id"] == remote.last_backup != first_backup

    # The backup taken before v2 names the image that was running (v1) and holds the data.
    manifest = remote.manifest(remote.last_backup)
    assert manifest["image"] == remote.images["v1"]
    assert manifest["compose_file"] == t.compose_file and manifest["service"] == t.service
    listing = remote.run(f"tar -tzf {q(remote.archive(remote.last_backup))}")
    assert listing.returncode == 0
    names = listing.stdout.split()
    assert "./data/items.txt" in names and "./.mcp-backup-manifest" in names
    assert not [n for n in names if n.startswith("./.deploy")]
    for backup_id in remote.backups:
        assert remote.archive(backup_id).stat().st_mode & 0o777 == 0o600

    env = (t.deploy_dir / ".env").read_text().splitlines()
    assert f"MCP_IMAGE={remote.images['v2']}" in env and f"MCP_HTTP_PORT={t.http_port}" in env
    app_env = t.deploy_dir / t.env_file
    assert app_env.read_text() == ENV_CONTENT
    assert app_env.stat().st_mode & 0o777 == 0o600
    staged = t.deploy_dir / ".deploy" / "staged"
    assert (staged / "IMAGE").read_text().strip() == remote.images["v2"]
    assert (staged / t.env_file).stat().st_mode & 0o777 == 0o600
    assert remote.leftovers() == []
    # the standalone health check agrees
    proc = remote.run(
        f"{q(remote.bin / 'healthcheck.sh')} --url {q(t.health_url)} --attempts 3 --timeout 10 "
        f"--deploy-dir {q(t.deploy_dir)} --compose-file {q(t.compose_file)} "
        f"--service {q(t.service)} --project {q(t.project)}"
    )
    assert proc.returncode == 0, proc.stderr
    assert one_json_line(proc)["healthy"] is True

    # Re-running release.sh alone (a retried `pulumi up`) is fine, and backs up again.
    before = remote.last_backup
    proc = remote.release()
    assert proc.returncode == 0, proc.stderr
    assert remote.version() == "v2"
    assert one_json_line(proc)["backup_id"] == remote.last_backup != before


@pytest.mark.parametrize(
    ("broken", "reason"),
    [
        ("broken-crash", "exit"),  # "exited with code 1" or "crash-looping ... exit code 1"
        ("broken-500", "error: 500"),
        ("broken-slow", "error: 503"),
    ],
)
def test_broken_release_rolls_back(remote: Remote, broken: str, reason: str) -> None:
    assert remote.pipeline("v2").returncode == 0
    remote.post("precious")
    before = remote.last_backup
    proc = remote.pipeline(broken)
    assert proc.returncode == 10, proc.stderr
    assert proc.stdout == ""
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("[release] FAILED: ")
    assert remote.images[broken] in last and reason in last
    assert f"ROLLED BACK to {remote.images['v2']}" in last
    assert remote.last_backup != before and remote.last_backup in last
    assert str(remote.archive(remote.last_backup)) in last
    assert "healthy again" in last and "logs" in last
    assert "last 30 log lines" in proc.stderr
    assert remote.version() == "v2"
    assert remote.data() == "precious\n"
    env = (remote.target.deploy_dir / ".env").read_text()
    assert f"MCP_IMAGE={remote.images['v2']}" in env
    assert remote.leftovers() == []
    # the next deploy works
    proc = remote.pipeline("v1")
    assert proc.returncode == 0, proc.stderr
    assert remote.version() == "v1" and remote.data() == "precious\n"


def test_first_deploy_broken_rolls_back_to_nothing(remote: Remote) -> None:
    proc = remote.pipeline("broken-crash")
    assert proc.returncode == 10, proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert "nothing was running before" in last
    assert remote.container() == ("", "")


def test_retried_release_rolls_back_to_its_own_fresh_backup(remote: Remote) -> None:
    """Issue 10 item 2: a retry of the same release (hours later) must not roll back to the
    backup of an earlier attempt and drop the writes made since."""
    assert remote.pipeline("v1").returncode == 0
    remote.post("before the first attempt")
    assert remote.deploy(remote.images["broken-500"]).returncode == 0
    remote.attempts, remote.timeout = 3, 6
    first = remote.release()
    assert first.returncode == 10, first.stderr
    first_backup = remote.last_backup
    assert remote.version() == "v1"
    remote.post("written between the attempts")

    time.sleep(1.1)  # backup ids have a one-second resolution
    retry = remote.release()  # the same staged release, run again
    assert retry.returncode == 10, retry.stderr
    assert remote.last_backup != first_backup
    last = retry.stderr.strip().splitlines()[-1]
    assert f"from backup {remote.last_backup}" in last and first_backup not in last
    assert remote.version() == "v1"
    # Nothing written before the retry started is lost.
    assert remote.data() == "before the first attempt\nwritten between the attempts\n"
    retry_created = remote.manifest(remote.last_backup)["created_at"]
    assert retry_created > remote.manifest(first_backup)["created_at"]


def test_release_refuses_a_backup_id(remote: Remote) -> None:
    """An old caller passing --backup-id is refused before anything happens (exit 2)."""
    assert remote.pipeline("v1").returncode == 0
    assert remote.deploy(remote.images["v2"]).returncode == 0
    archives = sorted(remote.target.backup_dir.iterdir())
    proc = remote.run(remote.release_cmd(f"--backup-id {remote.last_backup}"))
    assert proc.returncode == 2, proc.stderr
    assert "--backup-id is no longer accepted" in proc.stderr and "--keep" in proc.stderr
    assert sorted(remote.target.backup_dir.iterdir()) == archives
    assert remote.version() == "v1"


def test_release_without_backup_dir_is_not_rolled_back(remote: Remote) -> None:
    assert remote.pipeline("v1").returncode == 0
    assert remote.deploy(remote.images["broken-500"]).returncode == 0
    t = remote.target
    proc = remote.run(
        f"{q(remote.bin / 'release.sh')} {remote.common()} {remote.health()} "
        f"--env-file {q(t.env_file)}"
    )
    assert proc.returncode == 13, proc.stderr
    assert "NOT rolled back" in proc.stderr.strip().splitlines()[-1]
    assert remote.version() == "<500>"


def test_restore_named_and_latest(remote: Remote) -> None:
    assert remote.pipeline("v1").returncode == 0
    remote.post("a")
    assert remote.pipeline("v2").returncode == 0
    v1_backup = remote.last_backup  # taken while v1 ran, data "a"
    remote.post("b")
    assert remote.backup().returncode == 0  # v2, data a+b
    v2_backup = remote.last_backup

    proc = remote.restore(v1_backup)
    assert proc.returncode == 0, proc.stderr
    result = one_json_line(proc)
    undo = str(result.pop("replaced_backup"))
    assert result == {"restored_backup": v1_backup, "image": remote.images["v1"]}
    assert remote.version() == "v1"
    assert remote.data() == "a\n"
    # What the restore replaced was backed up first (v2, data a+b): a normal archive.
    assert undo not in (v1_backup, v2_backup)
    assert remote.manifest(undo)["image"] == remote.images["v2"]

    # ... and it is now the latest backup: restoring it undoes the restore.
    proc = remote.restore("latest")
    assert proc.returncode == 0, proc.stderr
    result = one_json_line(proc)
    assert result["restored_backup"] == undo and result["image"] == remote.images["v2"]
    assert remote.version() == "v2"
    assert remote.data() == "a\nb\n"

    proc = remote.restore("19990101_000000")
    assert proc.returncode == 12
    assert v1_backup in proc.stderr and v2_backup in proc.stderr
    assert remote.version() == "v2"
    assert remote.leftovers() == []


def test_failed_restore_keeps_the_live_data_and_version(remote: Remote) -> None:
    """Issue 10 item 1: a restore whose version is unhealthy must not delete the live data
    (recreate strategy): the replaced files go back and the previous version serves again."""
    assert remote.pipeline("v1").returncode == 0
    remote.post("a")
    assert remote.pipeline("v2").returncode == 0
    remote.post("b")
    bad = remote.copy_backup(
        remote.last_backup, "20200101_000000", image=remote.images["broken-500"]
    )
    before = set(remote.target.backup_dir.iterdir())
    remote.attempts, remote.timeout = 3, 6
    proc = remote.restore(bad)
    assert proc.returncode == 12, proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert "FAILED" in last and "is unhealthy" in last and "no data was lost" in last
    assert f"previous version {remote.images['v2']} is running and healthy again" in last
    assert remote.version() == "v2"
    assert remote.data() == "a\nb\n"  # written after the backup, and still there
    env = (remote.target.deploy_dir / ".env").read_text()
    assert f"MCP_IMAGE={remote.images['v2']}" in env
    assert not [p for p in remote.target.deploy_dir.iterdir() if p.name.startswith(".mcp-")]
    assert remote.leftovers() == []
    # The backup of what it would have replaced was kept (the restore was undoable).
    (made,) = set(remote.target.backup_dir.iterdir()) - before
    assert made.name in proc.stderr


def test_redeploy_older_tag(remote: Remote) -> None:
    assert remote.pipeline("v1").returncode == 0
    remote.post("kept")
    assert remote.pipeline("v2").returncode == 0
    proc = remote.pipeline("v1")
    assert proc.returncode == 0, proc.stderr
    assert remote.version() == "v1"
    assert remote.data() == "kept\n"
    assert remote.manifest(remote.last_backup)["image"] == remote.images["v2"]


def test_retention_keeps_exactly_n(remote: Remote) -> None:
    assert remote.pipeline("v1").returncode == 0
    for _ in range(4):
        proc = remote.backup(keep=2)
        assert proc.returncode == 0, proc.stderr
    archives = sorted(p.name for p in remote.target.backup_dir.glob("mcp-backup-*.tar.gz"))
    assert archives == [f"mcp-backup-{i}.tar.gz" for i in remote.backups[-2:]]
    assert proc.stderr.count("pruned old backup") == 1
    for backup_id in remote.backups[-2:]:
        assert remote.archive(backup_id).stat().st_mode & 0o777 == 0o600
        assert remote.run(f"tar -tzf {q(remote.archive(backup_id))} >/dev/null").returncode == 0
        assert remote.manifest(backup_id)["image"] == remote.images["v1"]


def test_concurrent_deploys_wait_or_refuse(remote: Remote) -> None:
    assert remote.pipeline("v1").returncode == 0
    remote.post("before the race")
    # A: a slow, failing release that holds the lock for ~timeout seconds.
    a = remote.start(remote.pipeline_shell("broken-slow"), remote.deploy_input())
    remote.wait_holder("release.sh")
    # B: refuses after 2 s, naming the holder.
    started = time.monotonic()
    b = remote.run(remote.backup_cmd(extra="--lock-timeout 2"))
    assert b.returncode == 4, b.stderr
    assert time.monotonic() - started < 30
    assert "another deploy holds the lock" in b.stderr and "script=release.sh" in b.stderr
    # C: waits for A (default lock timeout) and then deploys v2.
    c = remote.start(remote.pipeline_shell("v2"), remote.deploy_input())
    _, c_err = c.communicate(timeout=300)
    _, a_err = a.communicate(timeout=300)
    assert a.returncode == 10, a_err
    assert c.returncode == 0, c_err
    assert "waiting up to 120s for the deploy lock" in c_err
    assert remote.version() == "v2"
    assert remote.data() == "before the race\n"
    assert remote.leftovers() == []
    for archive in remote.target.backup_dir.glob("mcp-backup-*.tar.gz"):
        assert remote.run(f"gzip -t {q(archive)}").returncode == 0


@pytest.mark.parametrize("image", ["broken-500", "v2"])
def test_killed_release_leaves_a_serving_app(remote: Remote, image: str) -> None:
    assert remote.pipeline("v1").returncode == 0
    remote.post("survives")
    proc = remote.start(remote.pipeline_shell(image), remote.deploy_input())
    remote.wait_holder("release.sh")
    time.sleep(1)  # in the middle of `up -d` / the health check
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    # The release goes on without its session and ends (healthy, or rolled back).
    remote.wait_lock_free()
    history = (remote.target.deploy_dir / ".deploy" / "history.log").read_text()
    if image == "v2":
        assert remote.version() in ("v1", "v2")
    else:
        assert remote.version() == "v1", "a killed failing release must leave v1 serving"
        assert "ROLLED BACK" in history.strip().splitlines()[-1]
    assert remote.data() == "survives\n"
    assert remote.leftovers() == []
    proc2 = remote.pipeline("v2")
    assert proc2.returncode == 0, proc2.stderr
    assert remote.version() == "v2" and remote.data() == "survives\n"


def test_backup_on_full_disk(remote: Remote) -> None:
    assert remote.pipeline("v1").returncode == 0
    before = remote.container()
    tiny = remote.target.root_dir / "tiny-backups"
    tiny.mkdir()
    subprocess.run(["chown", remote.server.user, str(tiny)], check=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(tiny)], check=True)
    try:
        subprocess.run(["chown", remote.server.user, str(tiny)], check=True)
        proc = remote.backup(backup_dir=tiny)
        assert proc.returncode == 5, proc.stderr
        last = proc.stderr.strip().splitlines()[-1]
        assert "not enough disk space" in last and "MB free" in last and "--min-free-mb" in last
        assert list(tiny.iterdir()) == []
        # even with --min-free-mb 1 the archive must fit or fail cleanly: fill the disk
        subprocess.run(
            ["dd", "if=/dev/zero", f"of={tiny}/fill", "bs=1k", "count=1000"],
            capture_output=True,
            check=False,
        )
        proc = remote.backup(backup_dir=tiny, extra="--min-free-mb 1")
        assert proc.returncode in (5, 6), proc.stderr
        assert sorted(p.name for p in tiny.iterdir()) == ["fill"]
    finally:
        subprocess.run(["umount", str(tiny)], check=False)
    assert remote.container() == before, "the running app was touched"
    assert remote.version() == "v1"


def test_wrong_registry_password(remote: Remote) -> None:
    assert remote.pipeline("v1").returncode == 0
    before = remote.container()
    assert remote.backup().returncode == 0
    proc = remote.deploy(remote.images["v2"], password="definitely-wrong")
    assert proc.returncode == 7, proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert "docker login" in last and remote.server.registry in last
    assert "definitely-wrong" not in proc.stderr + proc.stdout
    assert proc.stdout == ""
    assert not (remote.target.deploy_dir / ".deploy" / "staged" / "IMAGE").exists()
    assert remote.container() == before
    assert remote.version() == "v1"
    # release.sh refuses to run what was not completely staged (and takes no backup)
    archives = sorted(remote.target.backup_dir.iterdir())
    proc = remote.release()
    assert proc.returncode == 3, proc.stderr
    assert "nothing staged" in proc.stderr
    assert sorted(remote.target.backup_dir.iterdir()) == archives
    assert remote.container() == before


def test_pull_of_missing_tag(remote: Remote) -> None:
    assert remote.pipeline("v1").returncode == 0
    missing = f"{remote.server.registry}/mcp/app:no-such-tag"
    proc = remote.deploy(missing)
    assert proc.returncode == 7, proc.stderr
    assert missing in proc.stderr.strip().splitlines()[-1]
    assert remote.version() == "v1"


# ---------------------------------------------------------------- busy apps (issue 10, item 7)

LINE = 4096  # bytes per line of the writer's data/stream.log (app/main.go streamLineSize)


def start_writer(remote: Remote, min_bytes: int) -> Path:
    """Deploy the sample app in `writer` mode and wait until its stream.log has min_bytes."""
    proc = remote.pipeline("writer")
    assert proc.returncode == 0, proc.stderr
    stream = remote.target.deploy_dir / "data" / "stream.log"
    end = time.monotonic() + 60
    while time.monotonic() < end:
        if stream.exists() and stream.stat().st_size >= min_bytes:
            return stream
        time.sleep(0.2)
    raise AssertionError(f"the writer never wrote {min_bytes} bytes to {stream}")


def archived(remote: Remote, backup_id: str, name: str) -> bytes:
    with tarfile.open(remote.archive(backup_id)) as tar:
        member = tar.extractfile(name)
        assert member is not None, name
        return member.read()


def assert_whole_lines(data: bytes) -> list[int]:
    """Every line is a complete writer line; returns their sequence numbers."""
    assert data and len(data) % LINE == 0, f"{len(data)} bytes: a half-written line"
    lines = data.split(b"\n")[:-1]
    assert all(len(line) == LINE - 1 and line.startswith(b"seq=") for line in lines)
    return [int(line.split(b" ", 1)[0][4:]) for line in lines]


def paused(remote: Remote) -> bool:
    cid, _ = remote.container()
    assert cid, "no running container"
    out = subprocess.run(
        ["docker", "inspect", "-f", "{{.State.Paused}}", cid],
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip() == "true"


def test_backup_during_writes_warns_and_never_blocks_a_deploy(remote: Remote) -> None:
    """A file changing under tar must not block the deploy: warn, naming the options."""
    start_writer(remote, 8 << 20)
    proc = remote.backup()
    assert proc.returncode == 0, proc.stderr
    warning = [line for line in proc.stderr.splitlines() if "WARNING: files changed" in line]
    assert warning, proc.stderr
    assert "--pre-backup-command" in warning[0] and "--pause-during-backup" in warning[0]
    assert "mcp:app.preBackupCommand" in warning[0] and "mcp:app.pauseDuringBackup" in warning[0]
    # The release of a busy app backs up during the writes too, and goes on.
    proc = remote.pipeline("v2")
    assert proc.returncode == 0, proc.stderr
    assert remote.version() == "v2"


def test_pause_during_backup_gives_whole_files_and_always_unpauses(remote: Remote) -> None:
    start_writer(remote, 4 << 20)
    proc = remote.backup(extra="--pause-during-backup")
    assert proc.returncode == 0, proc.stderr
    assert "files changed" not in proc.stderr
    assert "pausing the mcp-api-prod container" in proc.stderr and "unpaused" in proc.stderr
    seqs = assert_whole_lines(archived(remote, remote.last_backup, "./data/stream.log"))
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
    assert not paused(remote) and remote.version() == "writer"

    # A backup that fails while the app is paused still unpauses it.
    unreadable = remote.target.deploy_dir / "data" / "root-only"
    unreadable.write_text("secret")
    unreadable.chmod(0)
    archives = sorted(remote.target.backup_dir.iterdir())
    proc = remote.backup(extra="--pause-during-backup")
    assert proc.returncode == 6, proc.stderr
    assert "unpaused" in proc.stderr
    assert not paused(remote) and remote.version() == "writer"
    assert sorted(remote.target.backup_dir.iterdir()) == archives


def test_pre_backup_command_dumps_in_the_container_before_the_archive(remote: Remote) -> None:
    start_writer(remote, 1 << 20)
    dump = q("/mcp-sample-app dump")  # the image has no shell: run without one
    proc = remote.backup(extra=f"--pre-backup-command {dump}")
    assert proc.returncode == 0, proc.stderr
    assert "pre-backup command done" in proc.stderr
    # The dump, made by the app under its own lock, is whole and gap-free.
    seqs = assert_whole_lines(archived(remote, remote.last_backup, "./data/dump.txt"))
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs))) and len(seqs) >= 256

    # A failing pre-backup command stops the backup (and so a release): exit 6, nothing made.
    archives = sorted(remote.target.backup_dir.iterdir())
    failing = q("/mcp-sample-app no-such-command")
    proc = remote.backup(extra=f"--pre-backup-command {failing}")
    assert proc.returncode == 6, proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert "pre-backup command failed" in last and "no-such-command" in last
    assert sorted(remote.target.backup_dir.iterdir()) == archives
    assert remote.version() == "writer"
