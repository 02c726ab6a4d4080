"""Retention never prunes the newest backup of a version that served healthy (issue 16 item 9).

After a failed rollback the broken image is what runs, so every retry of the release backs up
the broken state (manifest image = the broken image) and, with plain "keep the newest N",
prunes one more good archive, until only broken-state backups remain. prune_backups now keeps,
for each image with a "served" line in the release ledger (<deploy-dir>/.deploy/releases.jsonl,
see remote/lib/ledger.sh), its newest archive, even beyond --keep, and says so.

docker is a stub (tests/scripts/conftest.py): STUB_IMAGE is "what runs" at each backup.
"""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

from ._helpers import run_script

COMPOSE = "docker-compose.production.yml"
V1 = "127.0.0.1:5000/mcp/app:v1"
V2 = "127.0.0.1:5000/mcp/app:v2"
BROKEN = "127.0.0.1:5000/mcp/app:broken-500"


def served(deploy: Path, *images: str) -> None:
    """Ledger lines as ledger_append writes them (format in remote/lib/ledger.sh)."""
    lines = []
    for image in images:
        line = {
            "at": "2026-12-01T10:00:00Z",
            "event": "served",
            "image": image,
            "digest": "",
            "by": "test",
            "via": "release",
            "detail": "",
            "backup_id": "",
        }
        lines.append(json.dumps(line) + "\n")
    with (deploy / ".deploy" / "releases.jsonl").open("a") as ledger:
        ledger.writelines(lines)


def failed(deploy: Path, image: str) -> None:
    line = {"at": "2026-12-01T10:05:00Z", "event": "failed", "image": image, "digest": ""}
    with (deploy / ".deploy" / "releases.jsonl").open("a") as ledger:
        ledger.write(json.dumps(line) + "\n")


def backup(deploy: Path, backups: Path, env: dict[str, str], running: str, keep: int):
    result = run_script(
        "backup.sh",
        "--deploy-dir",
        str(deploy),
        "--backup-dir",
        str(backups),
        "--keep",
        str(keep),
        "--service",
        "mcp-api-prod",
        "--compose-file",
        COMPOSE,
        env={**env, "STUB_CID": "abc", "STUB_IMAGE": running},
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)["backup_id"], result.stderr


def image_of(archive: Path) -> str:
    with tarfile.open(archive) as tar:
        member = tar.extractfile("./.mcp-backup-manifest")
        assert member is not None
        lines = member.read().decode().splitlines()
    return dict(line.split("=", 1) for line in lines)["image"]


def left(backups: Path) -> list[tuple[str, str]]:
    return [
        (p.name.removeprefix("mcp-backup-").removesuffix(".tar.gz"), image_of(p))
        for p in sorted(backups.glob("mcp-backup-*.tar.gz"))
    ]


def make_target(tmp_path: Path) -> tuple[Path, Path]:
    deploy, backups = tmp_path / "mcp", tmp_path / "mcp-backups"
    (deploy / "data").mkdir(parents=True)
    (deploy / ".deploy").mkdir()
    backups.mkdir()
    (deploy / COMPOSE).write_text("services: {}\n")
    (deploy / "data" / "items.txt").write_text("precious\n")
    return deploy, backups


def test_retries_of_a_broken_release_never_prune_the_last_good_backup(
    tmp_path: Path, stub_path: dict[str, str]
) -> None:
    deploy, backups = make_target(tmp_path)
    served(deploy, V1, V2)
    v1_old, _ = backup(deploy, backups, stub_path, V1, keep=3)
    v1_new, _ = backup(deploy, backups, stub_path, V1, keep=3)  # v1's newest
    v2_id, _ = backup(deploy, backups, stub_path, V2, keep=3)  # v2 served too
    failed(deploy, BROKEN)  # the rollback failed: the broken image is what runs now
    broken = []
    for _ in range(4):  # each retry of the release backs up the broken state first
        backup_id, stderr = backup(deploy, backups, stub_path, BROKEN, keep=3)
        broken.append(backup_id)
    # Kept: v1's and v2's newest (beyond --keep 3) and the newest broken ones within --keep.
    assert left(backups) == [
        (v1_new, V1),
        (v2_id, V2),
        (broken[-1], BROKEN),
    ], stderr
    assert not (backups / f"mcp-backup-{v1_old}.tar.gz").exists()  # not v1's newest
    assert "pruned old backup" in stderr
    # The last retry kept v1's and v2's newest, and said why.
    for backup_id, image in ((v1_new, V1), (v2_id, V2)):
        archive = backups / f"mcp-backup-{backup_id}.tar.gz"
        assert (
            f"kept {archive} beyond --keep 3: the newest backup of {image}, which served healthy"
            in stderr
        )


def test_a_version_that_never_served_is_pruned_as_before(
    tmp_path: Path, stub_path: dict[str, str]
) -> None:
    deploy, backups = make_target(tmp_path)
    served(deploy, V2)  # v1 never served healthy (no ledger line); the ledger knows v2
    ids = [backup(deploy, backups, stub_path, image, keep=2)[0] for image in (V1, V1, BROKEN)]
    assert left(backups) == [(ids[1], V1), (ids[2], BROKEN)]
    # Without any ledger (a server deployed before it existed): plain --keep.
    (deploy / ".deploy" / "releases.jsonl").unlink()
    last, stderr = backup(deploy, backups, stub_path, BROKEN, keep=1)
    assert left(backups) == [(last, BROKEN)]
    assert "beyond --keep" not in stderr
