"""`pulumi preview` / `pulumi up` through the real engine, checked on the server.

Each test has its own stack (file backend) and its own deploy target on the local server.
What serves is read from the app itself; what ran is read from the scripts' audit log on the
server (`<deployDir>/.deploy/history.log`), not only from Pulumi's output.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from collections.abc import Callable

    from local.target import HttpProbe
    from tests.e2e.conftest import E2EStack


def test_preview_lists_the_steps_and_touches_nothing(
    make_stack: Callable[..., E2EStack], http: HttpProbe
) -> None:
    e2e = make_stack("preview")
    deploy_dir = e2e.target.deploy_dir
    before = sorted(p.name for p in deploy_dir.iterdir())

    proc = e2e.stack.preview()

    for step in ("server-release", "server-deploy", "server-compose", "server-scripts"):
        assert step in proc.stdout, proc.stdout
    assert "create" in proc.stdout
    assert sorted(p.name for p in deploy_dir.iterdir()) == before
    assert not (deploy_dir / ".deploy").exists(), "preview installed something on the server"
    assert list(e2e.target.backup_dir.iterdir()) == []
    assert http.get(e2e.target.health_url)[0] == 0, "something answers after a preview"


def test_up_deploys_then_a_second_up_changes_nothing_then_v2(
    make_stack: Callable[..., E2EStack], sample_images: dict[str, str], http: HttpProbe
) -> None:
    e2e = make_stack("up")

    e2e.up()
    outputs = e2e.stack.outputs()
    assert e2e.served_version(http) == "v1"
    assert outputs["image"] == sample_images["v1"]
    assert outputs["previous_image"] == ""  # nothing served before the first deploy
    backups = sorted(p.name for p in e2e.target.backup_dir.iterdir())
    assert backups == [f"mcp-backup-{outputs['backup_id']}.tar.gz"]
    log_after_v1 = e2e.history_log()
    assert "release" in log_after_v1

    proc = e2e.up()
    assert "server-release" not in proc.stdout.split("Resources:")[-1]
    assert json.dumps(e2e.stack.outputs(), sort_keys=True) == json.dumps(outputs, sort_keys=True)
    assert e2e.history_log() == log_after_v1, "a no-op pulumi up ran a step on the server"
    assert sorted(p.name for p in e2e.target.backup_dir.iterdir()) == backups
    preview = e2e.stack.preview("--expect-no-changes", check=False)
    assert preview.returncode == 0, preview.stdout + preview.stderr

    e2e.set_tag("v2")
    e2e.up()
    outputs_v2 = e2e.stack.outputs()
    assert e2e.served_version(http) == "v2"
    assert outputs_v2["image"] == sample_images["v2"]
    assert outputs_v2["previous_image"] == sample_images["v1"]
    assert outputs_v2["backup_id"] != outputs["backup_id"]


# What the failure message must name, per broken variant (the health check's own reason).
FAILURES = {
    "broken-crash": r"crash-looping|no container is running",  # the app exits at start
    "broken-500": r"returned error: 500",  # it runs, its health answers 500
    "broken-slow": r"returned error: 503",  # its health answers 503 until the deadline
}


@pytest.mark.parametrize("broken", sorted(FAILURES))
def test_a_broken_release_fails_and_v2_keeps_serving_also_on_retry(
    make_stack: Callable[..., E2EStack],
    sample_images: dict[str, str],
    http: HttpProbe,
    broken: str,
) -> None:
    e2e = make_stack(broken, tag="v2")
    e2e.up()
    assert e2e.served_version(http) == "v2"
    good_outputs = e2e.stack.outputs()

    e2e.set_tag(broken)
    for attempt in ("first", "retry"):
        proc = e2e.up(check=False)
        output = proc.stdout + proc.stderr
        assert proc.returncode != 0, f"{attempt}: pulumi up of {broken} succeeded:\n{output}"
        assert "ROLLED BACK" in output, output
        assert f"FAILED: {sample_images[broken]} was unhealthy" in output, output
        assert re.search(FAILURES[broken], output), output
        assert e2e.served_version(http) == "v2", f"{attempt}: v2 is not serving"
        assert e2e.stack.outputs()["image"] == good_outputs["image"] == sample_images["v2"]
