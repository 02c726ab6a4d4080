"""`app/build.sh --context DIR`: the build context `mcp:image.prepare` writes for pulumi-docker."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BUILD_SH = ROOT / "app" / "build.sh"


def context_files(directory: Path) -> dict[str, tuple[str, int]]:
    return {
        path.name: (hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_mode & 0o777)
        for path in sorted(directory.iterdir())
    }


def write_context(cwd: Path, directory: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(BUILD_SH), "--context", directory],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )


def test_a_relative_context_lands_in_the_callers_directory_and_is_reproducible(
    tmp_path: Path,
) -> None:
    first = write_context(tmp_path, "ctx/a")
    assert first.returncode == 0, first.stderr
    second = write_context(tmp_path, "ctx/b")
    assert second.returncode == 0, second.stderr

    files = context_files(tmp_path / "ctx" / "a")
    assert sorted(files) == ["Dockerfile", "mcp-sample-app"]
    assert files["mcp-sample-app"][1] & 0o111, "the binary is not executable"
    # Same sources, same bytes and modes: pulumi-docker's context hash sees no change.
    assert context_files(tmp_path / "ctx" / "b") == files
    assert sorted(p.name for p in (tmp_path / "ctx").iterdir()) == ["a", "b"]  # no leftovers
    assert not (ROOT / "app" / "ctx").exists()


def test_context_needs_exactly_one_directory(tmp_path: Path) -> None:
    proc = subprocess.run(
        ["bash", str(BUILD_SH), "--context"], cwd=tmp_path, capture_output=True, text=True
    )
    assert proc.returncode != 0
    assert "--context needs one directory" in proc.stderr
