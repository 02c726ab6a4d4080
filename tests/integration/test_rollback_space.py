"""A release is refused when its automatic rollback could not fit (issue 16 item 8).

The backup's free-space check measures the backup dir; the recreate rollback extracts the
archive under <deploy-dir>/.deploy/, on the deploy dir's file system, which may be another
one and must hold the uncompressed copy. Here the deploy dir is a small tmpfs of its own
(the backup dir stays on the big disk): with a data file larger than what is left free on it,
release.sh must refuse before switching (exit 5, the old version serving), where it used to
switch, fail its health check and then fail the rollback too (exit 11: the app down).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from test_remote_scripts import Remote, one_json_line, q

if TYPE_CHECKING:
    from conftest import DeployTarget, HttpProbe, LocalServer

TMPFS_MB = 48
DATA_MB = 28  # incompressible, so more than half of the deploy dir's file system
SMALL = "--min-free-mb 1"  # the default, 100 MB, would refuse on this small file system


def mount_small_fs(server: LocalServer, target: DeployTarget) -> None:
    """The deploy dir, with what create_deploy_target put in it, on a tmpfs of TMPFS_MB."""
    deploy = target.deploy_dir
    saved = target.root_dir / "deploy-dir-contents"
    subprocess.run(["cp", "-a", str(deploy), str(saved)], check=True)
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={TMPFS_MB}m,mode=0755", "tmpfs", str(deploy)],
        check=True,
    )
    subprocess.run(["cp", "-a", f"{saved}/.", str(deploy)], check=True)
    subprocess.run(["chown", f"{server.user}:", str(deploy)], check=True)
    subprocess.run(["rm", "-rf", str(saved)], check=True)


@pytest.fixture
def small_remote(
    local_server: LocalServer,
    sample_images: dict[str, str],
    make_deploy_target,
    http: HttpProbe,
    request: pytest.FixtureRequest,
) -> Iterator[Remote]:
    target = make_deploy_target(request.node.name)
    mount_small_fs(local_server, target)
    remote = Remote(local_server, target, sample_images, http)
    remote.install_scripts()
    try:
        yield remote
    finally:
        # Stop what uses the tmpfs (bind mounts), then unmount; make_deploy_target removes the
        # rest afterwards.
        if (target.deploy_dir / target.compose_file).is_file():
            local_server.ssh(
                target.compose_command("down --remove-orphans --timeout 5"), timeout=120
            )
        if subprocess.run(["umount", str(target.deploy_dir)], check=False).returncode != 0:
            subprocess.run(["umount", "-l", str(target.deploy_dir)], check=False)


def free_mb(path: Path) -> int:
    out = subprocess.run(["df", "-Pk", str(path)], capture_output=True, text=True, check=True)
    return int(out.stdout.splitlines()[1].split()[3]) // 1024


def test_release_is_refused_when_its_rollback_cannot_be_extracted(small_remote: Remote) -> None:
    remote = small_remote
    t = remote.target
    assert remote.deploy(remote.images["v1"]).returncode == 0
    proc = remote.release(SMALL)
    assert proc.returncode == 0, proc.stderr
    remote.post("precious")
    big = t.deploy_dir / "data" / "big.bin"
    proc = remote.run(f"head -c {DATA_MB * 1024 * 1024} /dev/urandom > {q(big)}", timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert free_mb(t.deploy_dir) < DATA_MB, "the deploy dir's file system is not small enough"
    before = remote.container()
    archives_before = sorted(p.name for p in t.backup_dir.iterdir())

    proc = remote.deploy(remote.images["broken-500"])
    assert proc.returncode == 0, proc.stderr
    proc = remote.release(SMALL)
    assert proc.returncode == 5, proc.stderr
    assert proc.stdout == ""
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("[release] ERROR: not enough disk space for a rollback: "), last
    assert f"MB free in {t.deploy_dir}" in last and "--min-free-mb 1" in last
    assert f"Refusing to switch to {remote.images['broken-500']}" in last
    assert f"{remote.images['v1']} still runs" in last
    assert "Free space on the file system of" in last
    # Nothing switched: the same v1 container serves the same data; the backup is kept.
    assert remote.container() == before
    assert remote.version() == "v1" and remote.data() == "precious\n"
    assert big.stat().st_size == DATA_MB * 1024 * 1024
    assert f"MCP_IMAGE={remote.images['v1']}" in (t.deploy_dir / ".env").read_text()
    new_archives = sorted(p.name for p in t.backup_dir.iterdir() if p.name not in archives_before)
    assert new_archives == [f"mcp-backup-{remote.last_backup}.tar.gz"]
    assert remote.leftovers() == []

    # With room for the rollback, the same release runs, fails, and is rolled back.
    big.unlink()
    proc = remote.release(SMALL)
    assert proc.returncode == 10, proc.stderr
    assert "disk space ok for a rollback" in proc.stderr
    assert f"ROLLED BACK to {remote.images['v1']}" in proc.stderr.strip().splitlines()[-1]
    assert remote.version() == "v1" and remote.data() == "precious\n"
    proc = remote.deploy(remote.images["v2"])
    assert proc.returncode == 0, proc.stderr
    proc = remote.release(SMALL)
    assert proc.returncode == 0, proc.stderr
    assert one_json_line(proc)["image"] == remote.images["v2"]
    assert os.path.ismount(t.deploy_dir)  # the deploy dir was the small tmpfs throughout
