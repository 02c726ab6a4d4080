"""The one swap of the deploy dir's files used by every restore (remote/lib.sh swap_in,
put_back, drop_replaced: restore.sh and release.sh's rollback with either strategy)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from ._helpers import REMOTE


def lib(call: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            "bash",
            "-c",
            f'set -euo pipefail; STEP=test; source "$1"; shift; {call}',
            "bash",
            str(REMOTE / "lib.sh"),
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def tree(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): p.read_text() for p in sorted(root.rglob("*")) if p.is_file()}


def make(tmp_path: Path) -> tuple[Path, Path]:
    live = tmp_path / "mcp"
    (live / ".deploy" / "bin").mkdir(parents=True)
    (live / ".deploy" / "bin" / "release.sh").write_text("live scripts\n")
    (live / "data").mkdir()
    (live / "data" / "items.txt").write_text("live data\n")
    (live / ".env").write_text("MCP_IMAGE=live\n")
    backup = tmp_path / "extracted"
    (backup / ".deploy").mkdir(parents=True)  # a hand-made archive with a .deploy/ in it
    (backup / ".deploy" / "lock").write_text("from the backup\n")
    (backup / "data").mkdir()
    (backup / "data" / "items.txt").write_text("backup data\n")
    (backup / ".env").write_text("MCP_IMAGE=old\n")
    return live, backup


def test_swap_never_touches_deploy_and_put_back_restores_all(tmp_path: Path) -> None:
    live, backup = make(tmp_path)
    before = tree(live)
    old = ".mcp-replaced-20250101000000-1"
    result = lib('swap_in "$@"', str(live), str(backup), old)
    assert result.returncode == 0, result.stderr
    assert (live / "data" / "items.txt").read_text() == "backup data\n"
    assert (live / ".env").read_text() == "MCP_IMAGE=old\n"
    assert (live / ".deploy" / "bin" / "release.sh").read_text() == "live scripts\n"
    assert not (live / ".deploy" / "lock").exists(), "the backup's .deploy/ was swapped in"
    assert (live / f"{old}.data" / "items.txt").read_text() == "live data\n"
    assert not (live / f"{old}..deploy").exists()

    result = lib('put_back "$@"', str(live), old)
    assert result.returncode == 0, result.stderr
    assert tree(live) == before
    assert "nothing that was live was lost" in result.stderr


def test_drop_replaced_deletes_only_what_was_renamed_aside(tmp_path: Path) -> None:
    live, backup = make(tmp_path)
    old = ".mcp-replaced-20250101000000-2"
    assert lib('swap_in "$@"', str(live), str(backup), old).returncode == 0
    (live / ".mcp-replaced-19990101000000-9.keep").write_text("an older leftover\n")
    assert lib('drop_replaced "$@"', str(live), old).returncode == 0
    assert sorted(p.name for p in live.iterdir()) == [
        ".deploy",
        ".env",
        ".mcp-replaced-19990101000000-9.keep",
        "data",
    ]
    assert (live / "data" / "items.txt").read_text() == "backup data\n"
