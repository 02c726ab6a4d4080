"""`python rollback.py` end to end: through the Automation API and the real engine, checked on
the server (which version answers, its release ledger, the scripts' audit log). The stack file
holds no image tag between deploys, as on production, where the deploy workflow passes the tag
for each run and never commits it.

Issue 16's rollback items, each against the real engine: `--last-good` never lands on a version
that was rolled back from or failed (1), a tag rollback deploys the digest that served, not
what the tag points to now (2), nothing overwrites a rollback's target (3), CI's 40-character
tags by a unique prefix (4), `--list` (5).
"""

from __future__ import annotations

import json
import secrets
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

from components.release_ledger import image_tag
from tests.e2e.conftest import run_tool

if TYPE_CHECKING:
    from collections.abc import Callable

    from local.target import HttpProbe, LocalServer
    from tests.e2e.conftest import E2EStack

ROOT = Path(__file__).resolve().parents[2]


def rollback(e2e: E2EStack, *args: str, confirm: bool = True) -> subprocess.CompletedProcess[str]:
    yes = ["--yes"] if confirm else []
    return run_tool(e2e, "rollback.py", "--stack", e2e.stack.name, *args, *yes)


def deploy_tag_for_one_run(e2e: E2EStack, tag: str) -> None:
    """What the deploy workflow does: the tag for this run only, none left in the stack file."""
    e2e.up("--config", f"mcp:imageTag={tag}")
    e2e.stack.run("config", "rm", "mcp:imageTag")


def push_as(server: LocalServer, source: str, tag: str) -> str:
    """Pushes the local registry's image `source` under `tag` (moving the tag if it exists)."""
    target = f"{source.rsplit(':', 1)[0]}:{tag}"
    for argv in (["docker", "pull", source], ["docker", "tag", source, target]):
        subprocess.run(argv, check=True, capture_output=True, timeout=300)
    subprocess.run(["docker", "push", target], check=True, capture_output=True, timeout=300)
    return target


def ledger(e2e: E2EStack) -> list[dict[str, str]]:
    path = e2e.target.deploy_dir / ".deploy" / "releases.jsonl"
    text = e2e.server.ssh(f"cat {path}", check=True).stdout
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def ordinary_deploy_after_a_rollback(e2e: E2EStack, tag: str) -> None:
    """The explicit new version on a terminal: the rollback's pin goes, a new tag comes."""
    e2e.stack.run("config", "rm", "mcp:imagePin")
    deploy_tag_for_one_run(e2e, tag)


def assert_ok(proc: subprocess.CompletedProcess[str]) -> None:
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_last_good_never_goes_back_to_a_version_that_was_rolled_back_from(
    make_stack: Callable[..., E2EStack], sample_images: dict[str, str], http: HttpProbe
) -> None:
    """v1, v2, v3 served; --last-good from v3 lands on v2; a second one on v1, never v3.
    Then A good, B bad restored away with --backup: --last-good refuses rather than pick B."""
    e2e = make_stack("last-good")
    e2e.stack.run("config", "rm", "mcp:imageTag")
    # v3: another image (the healthy "writer" sample) under a tag of its own.
    v3 = push_as(e2e.server, sample_images["writer"], f"v3-{secrets.token_hex(3)}")
    v3 = v3.rsplit(":", 1)[1]
    for tag in ("v1", "v2", v3):
        deploy_tag_for_one_run(e2e, tag)
    assert e2e.served_version(http) == "writer"

    assert_ok(proc := rollback(e2e, "--last-good", "--reason", "v3 broke checkout"))
    assert "is rolled back from (v3 broke checkout)" in proc.stderr
    assert e2e.served_version(http) == "v2"
    assert_ok(proc := rollback(e2e, "--last-good"))
    assert e2e.served_version(http) == "v1", proc.stderr  # not v3 again
    outputs = e2e.stack.outputs()
    assert outputs["image"].startswith(sample_images["v1"] + "@sha256:")

    proc = rollback(e2e, "--last-good")  # v3 and v2 were rolled back from: nothing is good
    assert proc.returncode == 2, proc.stderr
    assert "no earlier version served healthy" in proc.stderr
    assert e2e.served_version(http) == "v1"

    marks = [(line["event"], image_tag(line["image"])) for line in ledger(e2e)]
    assert ("rolled-back-from", v3) in marks and ("rolled-back-from", "v2") in marks
    assert all(line["by"] for line in ledger(e2e))


def test_backup_restore_marks_the_bad_version_and_pins_what_it_restored(
    make_stack: Callable[..., E2EStack], sample_images: dict[str, str], http: HttpProbe
) -> None:
    """A good, B bad: `--backup` restoring A. --last-good must not return B, and the next
    plain `pulumi up` must not put B back over the restored data."""
    e2e = make_stack("backup-pin")
    e2e.up()  # A = v1
    e2e.set_tag("v2")  # B = v2, "bad" by the on-call's judgement
    e2e.up()
    backup_of_v1 = e2e.stack.outputs()["backup_id"]

    assert_ok(rollback(e2e, "--backup", backup_of_v1))
    assert e2e.served_version(http) == "v1"
    pin = e2e.stack.run("config", "get", "mcp:imagePin").stdout.strip()
    assert pin.startswith("v1@sha256:")
    assert e2e.stack.run("config", "get", "mcp:imageTag").stdout.strip() == "v1"
    marker = f"written-after-the-restore-{secrets.token_hex(4)}"
    data = e2e.target.deploy_dir / "data" / "marker.txt"
    e2e.server.ssh(f"echo {marker} > {data}", check=True)

    e2e.up()  # a plain up: the pinned, restored version; never v2 over the restored data
    assert e2e.served_version(http) == "v1"
    assert e2e.stack.outputs()["image"].endswith(pin)
    assert e2e.server.ssh(f"cat {data}", check=True).stdout.strip() == marker

    proc = rollback(e2e, "--last-good")
    assert proc.returncode == 2, proc.stderr  # v2 was rolled back from; v1 serves
    assert "v2 (rolled back from)" in proc.stderr
    assert e2e.served_version(http) == "v1"


def test_tag_rollback_deploys_the_digest_that_served_and_a_plain_up_keeps_it(
    make_stack: Callable[..., E2EStack], sample_images: dict[str, str], http: HttpProbe
) -> None:
    """The tag moved in the registry since it served (pushed again with v2's content): the
    rollback deploys the digest the ledger recorded. Then a plain `up` changes nothing, and a
    new tag under the pin is refused until the pin is removed (an explicit new version)."""
    e2e = make_stack("tag-pin")
    moving = f"{'7' * 7}{secrets.token_hex(16)}"[:40]  # a CI-style 40-character tag
    push_as(e2e.server, sample_images["v1"], moving)
    e2e.set_tag(moving)
    e2e.up()
    assert e2e.served_version(http) == "v1"
    e2e.set_tag("v2")
    e2e.up()
    push_as(e2e.server, sample_images["v2"], moving)  # the tag now names other content

    assert_ok(proc := rollback(e2e, "--image-tag", moving[:7]))  # a short SHA, as people type
    assert e2e.served_version(http) == "v1", proc.stderr  # the digest that served, not the tag
    pin = e2e.stack.run("config", "get", "mcp:imagePin").stdout.strip()
    assert pin.startswith(f"{moving}@sha256:")
    assert e2e.stack.outputs()["image"].endswith(pin)

    audit = len(e2e.history_log().splitlines())
    e2e.up()  # plain: nothing runs on the server, nothing is built or pushed
    assert e2e.history_log().splitlines()[audit:] == []
    assert e2e.served_version(http) == "v1"

    refused = e2e.up("--config", "mcp:imageTag=v2", check=False)
    assert refused.returncode != 0
    assert "pulumi config rm mcp:imagePin" in refused.stdout + refused.stderr
    assert e2e.served_version(http) == "v1"

    ordinary_deploy_after_a_rollback(e2e, "v2")
    assert e2e.served_version(http) == "v2"


def test_list_and_prefix_errors(
    make_stack: Callable[..., E2EStack], sample_images: dict[str, str], http: HttpProbe
) -> None:
    e2e = make_stack("list")
    e2e.up()
    e2e.set_tag("broken-500")
    assert e2e.up(check=False).returncode != 0  # fails, rolled back automatically
    e2e.set_tag("v2")
    e2e.up()

    assert_ok(proc := rollback(e2e, "--list"))
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("TAG")
    assert lines[1].startswith("v2 ") and "healthy (serving now)" in lines[1]
    assert lines[2].startswith("broken-500 ") and "failed" in lines[2]
    assert lines[3].startswith("v1 ") and "healthy" in lines[3]
    assert "sha256:" in lines[1]

    assert_ok(proc := rollback(e2e, "--list", "--json"))
    rows = json.loads(proc.stdout)
    assert [row["status"] for row in rows] == ["healthy", "failed", "healthy"]

    proc = rollback(e2e, "--image-tag", "nope")
    assert proc.returncode == 2 and "ever served on this server" in proc.stderr
    proc = rollback(e2e, "--image-tag", "broken-500")  # failed: never served, never a target
    assert proc.returncode == 2, proc.stderr
    proc = rollback(e2e, "--last-good", confirm=False)  # no terminal, no --yes
    assert proc.returncode == 2 and "--yes" in proc.stderr
    assert e2e.served_version(http) == "v2"


def test_backups_latest_twice_then_an_ordinary_deploy(
    make_stack: Callable[..., E2EStack], sample_images: dict[str, str], http: HttpProbe
) -> None:
    """`--backup latest` twice in a row: each runs a restore (one-shot, not a no-op)."""
    e2e = make_stack("rollbacks")
    e2e.up()  # v1
    e2e.set_tag("v2")
    e2e.up()

    for _ in range(2):
        before = restores_run(e2e)
        assert_ok(proc := rollback(e2e, "--backup", "latest"))
        assert restores_run(e2e) == before + 1, proc.stderr
        served = e2e.served_version(http)
        assert served in {"v1", "v2"}
        assert e2e.stack.outputs()["image"] == sample_images[served]

    listed = e2e.stack.run("config", "--json").stdout
    assert "mcp:restoreBackup" not in listed, "restore mode was left in the stack config"
    ordinary_deploy_after_a_rollback(e2e, "v2")
    assert e2e.served_version(http) == "v2"
    assert e2e.stack.outputs()["mode"] == "deploy"


def restores_run(e2e: E2EStack) -> int:
    """How many times restore.sh ran on the server (its audit log lines)."""
    return sum("[restore] started by" in line for line in e2e.history_log().splitlines())
