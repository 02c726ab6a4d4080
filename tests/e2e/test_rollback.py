"""`python rollback.py` end to end: through the Automation API and the real engine, checked on
the server. The stack file holds no image tag between runs, as on production, where the deploy
workflow passes the tag for each run and never commits it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable

    from local.target import HttpProbe
    from tests.e2e.conftest import E2EStack

ROOT = Path(__file__).resolve().parents[2]


def rollback(e2e: E2EStack, *args: str) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "rollback.py"), "--stack", e2e.stack.name, *args, "--yes"],
        cwd=ROOT,
        env=e2e.stack.env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    e2e.stack.log += [proc.stdout, proc.stderr]
    return proc


def deploy_tag_for_one_run(e2e: E2EStack, tag: str) -> None:
    """What the deploy workflow does: the tag for this run only, none left in the stack file."""
    e2e.up("--config", f"mcp:imageTag={tag}")
    e2e.stack.run("config", "rm", "mcp:imageTag")


def restores_run(e2e: E2EStack) -> int:
    """How many times restore.sh ran on the server (its audit log lines)."""
    return sum("[restore] started by" in line for line in e2e.history_log().splitlines())


def test_last_good_puts_back_the_previous_version_never_the_one_serving(
    make_stack: Callable[..., E2EStack], sample_images: dict[str, str], http: HttpProbe
) -> None:
    e2e = make_stack("last-good")
    e2e.stack.run("config", "rm", "mcp:imageTag")
    deploy_tag_for_one_run(e2e, "v1")
    deploy_tag_for_one_run(e2e, "v2")
    assert e2e.served_version(http) == "v2"

    proc = rollback(e2e, "--last-good")

    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "serving now (stack output `image`): tag v2" in proc.stderr
    assert "tag v1" in proc.stderr
    assert e2e.served_version(http) == "v1"
    assert e2e.stack.outputs()["image"] == sample_images["v1"]
    history = e2e.stack.history()
    assert history[0]["message"].startswith("rollback: redeploy image tag v1")

    proc = rollback(e2e, "--last-good")  # from v1, the last good other than v1 is v2
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert e2e.served_version(http) == "v2"

    # A backup restore with no tag in the stack file (production's case) needs none.
    e2e.stack.run("config", "rm", "mcp:imageTag")
    proc = rollback(e2e, "--backup", "latest")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert e2e.served_version(http) == "v1"  # the backup taken before the last release
    deploy_tag_for_one_run(e2e, "v2")  # then the next deploy, as the workflow runs it
    assert e2e.served_version(http) == "v2"


def test_image_tag_then_backups_then_an_ordinary_deploy(
    make_stack: Callable[..., E2EStack], sample_images: dict[str, str], http: HttpProbe
) -> None:
    e2e = make_stack("rollbacks")
    e2e.up()  # v1
    e2e.set_tag("v2")
    e2e.up()
    backup_of_v1 = e2e.stack.outputs()["backup_id"]  # taken while v1 served

    proc = rollback(e2e, "--image-tag", "v1")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert e2e.served_version(http) == "v1"
    assert e2e.stack.run("config", "get", "--path", "mcp:image.build").stdout.strip() == "false"
    e2e.set_tag("v2")  # an ordinary deploy from the config the rollback left
    e2e.up()
    assert e2e.served_version(http) == "v2"

    restores = restores_run(e2e)
    proc = rollback(e2e, "--backup", backup_of_v1)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert e2e.served_version(http) == "v1"
    assert e2e.stack.outputs()["image"] == sample_images["v1"]
    assert e2e.stack.outputs()["mode"] == "restore"
    assert restores_run(e2e) == restores + 1

    for _ in range(2):  # `latest` twice in a row: each one runs a restore (one-shot, not a no-op)
        before = restores_run(e2e)
        proc = rollback(e2e, "--backup", "latest")
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert restores_run(e2e) == before + 1, proc.stderr
        assert e2e.served_version(http) in {"v1", "v2"}
        served = e2e.served_version(http)
        assert e2e.stack.outputs()["image"] == sample_images[served]

    listed = e2e.stack.run("config", "--json").stdout
    assert "mcp:restoreBackup" not in listed, "restore mode was left in the stack config"
    e2e.set_tag("v2")  # the next ordinary deploy deploys
    e2e.up()
    assert e2e.served_version(http) == "v2"
    assert e2e.stack.outputs()["mode"] == "deploy"
    assert e2e.stack.outputs()["image"] == sample_images["v2"]
