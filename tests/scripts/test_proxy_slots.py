"""bg_write_slots (remote/lib/proxy-routes.sh): the proxy's 100 upstream slots, each a file
Caddy reads per request. A canary's share is a count of slots spread evenly, and a change is
one atomic swap of the `slots` symlink: a request sees the old split or the new one, and a
full disk leaves the old one whole."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from ._helpers import REMOTE

SLOTS = 100
BLUE, GREEN = 8001, 8002


def write_slots(proxy_dir: Path, *args: int) -> subprocess.CompletedProcess[str]:
    """bg_write_slots PORT [PORT2 PERCENT2] with lib.sh sourced as the entry scripts do."""
    script = (
        'set -euo pipefail; STEP=test; source "$1/lib.sh"; BG_PROXY_DIR=$2; shift 2; '
        'bg_write_slots "$@"'
    )
    return subprocess.run(
        ["bash", "-c", script, "_", str(REMOTE), str(proxy_dir), *map(str, args)],
        input="",
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def slot_ports(proxy_dir: Path) -> list[int]:
    files = sorted((proxy_dir / "slots").iterdir())
    assert [f.name for f in files] == [f"{i:02d}" for i in range(SLOTS)]
    return [int(f.read_text()) for f in files]


@pytest.mark.parametrize("percent", [0, 1, 5, 10, 25, 33, 50, 67, 90, 99, 100])
def test_a_share_is_that_many_slots_spread_evenly(tmp_path: Path, percent: int) -> None:
    proc = write_slots(tmp_path, BLUE, GREEN, percent)
    assert proc.returncode == 0, proc.stderr
    ports = slot_ports(tmp_path)
    assert ports.count(GREEN) == percent and ports.count(BLUE) == SLOTS - percent
    # Round robin takes the slots in turn: any run of n requests sends n*percent/100 of them
    # to the new colour, give or take one.
    for n in (10, 20, 50):
        for start in range(SLOTS - n + 1):
            window = ports[start : start + n].count(GREEN)
            assert abs(window - n * percent / SLOTS) < 1 + 1e-9, (n, start, ports)


def test_one_port_fills_every_slot(tmp_path: Path) -> None:
    assert write_slots(tmp_path, GREEN).returncode == 0
    assert set(slot_ports(tmp_path)) == {GREEN}


def test_a_change_swaps_the_symlink_and_keeps_only_the_previous_directory(tmp_path: Path) -> None:
    """The directory swapped out may still be opened by an in-flight request: it is kept until
    the next change; older ones go."""
    for args in [(BLUE,), (BLUE, GREEN, 10), (BLUE, GREEN, 50), (GREEN,)]:
        before = (tmp_path / "slots").readlink() if (tmp_path / "slots").is_symlink() else None
        assert write_slots(tmp_path, *args).returncode == 0
        now = (tmp_path / "slots").readlink()
        dirs = {p.name for p in tmp_path.iterdir() if p.is_dir() and not p.is_symlink()}
        assert dirs == {str(now)} | ({str(before)} if before else set()), dirs
    assert set(slot_ports(tmp_path)) == {GREEN}


def test_a_link_left_by_a_swap_killed_before_its_rename_is_removed_by_the_next(
    tmp_path: Path,
) -> None:
    """A kill between `ln -s` and `mv` leaves `slots.XXXXXX.link` (never live: the live link is
    `slots`); the next change removes it, and the directory it named, and serves its own split."""
    assert write_slots(tmp_path, BLUE).returncode == 0
    before = str((tmp_path / "slots").readlink())
    (tmp_path / "slots.killed").mkdir()
    (tmp_path / "slots.killed.link").symlink_to("slots.killed")
    assert write_slots(tmp_path, BLUE, GREEN, 10).returncode == 0
    now = str((tmp_path / "slots").readlink())
    left = {p.name for p in tmp_path.iterdir() if p.name.startswith("slots.")}
    assert left == {now, before}, left
    assert slot_ports(tmp_path).count(GREEN) == 10


def test_a_full_disk_leaves_the_previous_split_whole(tmp_path: Path) -> None:
    """On a tmpfs with room for one set of slots (a page per file), the second change fails:
    bg_write_slots says so (non-zero), `slots` still names the first split, nothing is left
    behind."""
    mount = tmp_path / "small"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=600k", "tmpfs", str(mount)], check=True)
    try:
        assert write_slots(mount, BLUE, GREEN, 10).returncode == 0
        first = (mount / "slots").readlink()
        proc = write_slots(mount, GREEN)
        assert proc.returncode != 0, "the second set of slots fitted: the test proves nothing"
        assert (mount / "slots").readlink() == first
        assert slot_ports(mount).count(GREEN) == 10
        assert sorted(p.name for p in mount.iterdir()) == sorted(["slots", str(first)])
    finally:
        subprocess.run(["umount", str(mount)], check=True)
