"""`python oncall.py` end to end: through the Automation API and the real engine against the
local server: status, logs, backups, audit (with the deploy metrics), a deploy freeze that
refuses a deploy and a plain rollback, an emergency rollback passing it with
`rollback.py --override-freeze` (recorded in the audit), and the dashboard opened in a real
headless Chromium (Debian's, driven by playwright) to check what it shows.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tests.e2e.conftest import run_tool
from tests.e2e.test_rollback import rollback

if TYPE_CHECKING:
    from collections.abc import Callable

    from local.target import HttpProbe
    from tests.e2e.conftest import E2EStack

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"  # Debian's package (local/server.sh install)


def oncall(e2e: E2EStack, *args: str) -> subprocess.CompletedProcess[str]:
    return run_tool(e2e, "oncall.py", "--stack", e2e.stack.name, *args, timeout=300)


def oncall_json(e2e: E2EStack, *args: str) -> Any:
    proc = oncall(e2e, "--json", *args)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json.loads(proc.stdout)


def test_status_logs_backups_freeze_override_audit_and_dashboard(
    make_stack: Callable[..., E2EStack],
    sample_images: dict[str, str],
    http: HttpProbe,
    tmp_path: Path,
) -> None:
    e2e = make_stack("oncall")
    e2e.up()  # v1
    e2e.set_tag("v2")
    e2e.up()
    assert e2e.served_version(http) == "v2"

    # status: what serves, its digest, since when, by whom, health now, outputs, no drift.
    status = oncall_json(e2e, "status")
    assert status["image"] == e2e.stack.outputs()["image"] == sample_images["v2"]
    assert status["digest"].startswith("sha256:")
    assert status["healthy"] is True and '"v2"' in status["health"]
    assert status["since"].endswith("Z") and status["deployed_by"]
    assert status["commit"] == "v2" and status["drift"] == "" and status["frozen"] is False
    assert status["outputs"]["backup_id"] == status["backup_id"]
    text = oncall(e2e, "status")
    assert text.returncode == 0, text.stderr
    assert (
        f"serving      {sample_images['v2']}" in text.stdout and "drift        none" in text.stdout
    )

    # logs: the live release's compose logs.
    logs = oncall(e2e, "logs", "--lines", "20", "--since", "1h")
    assert logs.returncode == 0, logs.stderr
    assert "logs --no-color --timestamps --tail 20 --since 1h mcp-api-prod" in logs.stderr

    # backups: both releases' backups, verified, with the image each holds.
    rows = oncall_json(e2e, "backups")
    assert len(rows) >= 2 and all(row["verified"] is True and row["size_bytes"] > 0 for row in rows)
    assert sample_images["v1"] in [row["image"] for row in rows]
    assert rows[0]["created_at"] >= rows[-1]["created_at"]  # newest first

    # A freeze: a plain deploy is refused naming who and why; nothing changes.
    frozen = oncall_json(e2e, "lock", "acquire", "-m", "incident 42: database migration")
    assert frozen["frozen"] is True and frozen["reason"] == "incident 42: database migration"
    assert oncall_json(e2e, "lock", "status")["by"] == frozen["by"]
    e2e.set_tag("v1")
    refused = e2e.up(check=False)
    assert refused.returncode != 0
    out = refused.stdout + refused.stderr
    assert "deploys are FROZEN" in out and "incident 42: database migration" in out
    assert frozen["by"] in out
    assert e2e.served_version(http) == "v2"
    assert e2e.stack.outputs()["image"] == sample_images["v2"]
    e2e.set_tag("v2")

    # A plain rollback is refused too, before anything is marked; an emergency one passes.
    proc = rollback(e2e, "--last-good")
    assert proc.returncode == 2 and "FROZEN" in proc.stderr, proc.stderr
    proc = rollback(e2e, "--last-good", "--override-freeze", "--reason", "v2 breaks checkout")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "OVERRIDING the deploy freeze" in proc.stderr
    assert e2e.served_version(http) == "v1"
    assert "overrideFreeze" not in e2e.stack.run("config", "--json").stdout  # one update only
    assert oncall_json(e2e, "status")["frozen"] is True  # the freeze itself stays

    # audit: pulumi's updates and the server's runs, actors, results, step timings.
    found = oncall_json(e2e, "audit")
    events = found["events"]
    updates = [e for e in events if e["source"] == "pulumi" and e["kind"] == "update"]
    assert len(updates) >= 4 and {"succeeded", "failed"} <= {e["result"] for e in updates}
    releases = [e for e in events if e["kind"] == "release"]
    assert [e["result"] for e in releases] == ["success", "success", "success"]  # v1, v2, v1
    assert "pulumi" not in {e["source"] for e in releases}
    overridden = releases[-1]
    assert "incident 42: database migration" in overridden["details"]["freeze_overridden"]
    assert overridden["details"]["update"] is not None  # joined to the pulumi update it ran in
    assert "v2 breaks checkout" in json.dumps(events)  # the rollback's mark, with its reason
    metrics = [
        m for m in found["metrics"] if m["script"] == "release" and m["outcome"] == "success"
    ]
    for run in metrics:
        assert {"backup_s", "pull_s", "up_s", "healthy_s", "total_s"} <= set(run["timings"])
        assert run["timings"]["total_s"] >= run["timings"]["healthy_s"] > 0
    deploys = [e for e in events if e["kind"] == "deploy"]
    assert deploys[-1]["result"] == "success" and "frozen" in [e["result"] for e in deploys]
    assert found["summary"]["frozen_refusals"] >= 1
    assert found["summary"]["success_rate"] == 1.0
    text = oncall(e2e, "audit")
    assert text.returncode == 0 and "FREEZE OVERRIDDEN" in text.stdout, text.stderr
    assert "deploys frozen: incident 42" in text.stdout

    # Lifting the freeze: the next ordinary deploy runs.
    assert oncall_json(e2e, "lock", "release")["frozen"] is False
    e2e.stack.run("config", "rm", "mcp:imagePin")
    e2e.set_tag("v2")
    e2e.up()
    assert e2e.served_version(http) == "v2"

    # The dashboard, in a real browser.
    page_file = tmp_path / "deploys.html"
    proc = oncall(e2e, "dashboard", "--out", str(page_file))
    assert proc.returncode == 0, proc.stderr
    check_dashboard(page_file, e2e.stack.name)


def check_dashboard(page_file: Path, stack: str) -> None:
    """Opens the page in Debian's Chromium (no browser download) and reads what it shows."""
    from playwright.sync_api import sync_playwright

    html = page_file.read_text()
    assert (
        "http://" not in html.replace("http://www.w3.org/2000/svg", "") and "https://" not in html
    )
    with sync_playwright() as play:
        browser = play.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = browser.new_page()
            requests: list[str] = []
            page.on("request", lambda request: requests.append(request.url))
            page.goto(page_file.as_uri())
            section = page.locator(f'section[data-stack="{stack}"]')
            assert section.locator("h2").inner_text() == f"Stack {stack}"
            assert section.locator(".success-rate b").inner_text() == "100%"
            assert "4 of 4" in section.locator(".success-rate small").inner_text()
            assert section.locator(".frozen b").inner_text() == "1"
            bars = section.locator("svg.durations rect.bar")
            assert bars.count() == 4  # releases and restores that ran (the frozen one did not)
            box = bars.first.bounding_box()
            assert box is not None and box["height"] > 1  # drawn, not an empty chart
            assert section.locator("tr.kind-release").count() == 4
            assert section.locator("tr.kind-release", has_text="FREEZE OVERRIDDEN").count() == 1
            assert section.locator("tr.kind-freeze").count() == 2
            assert section.locator(".mttr b").inner_text() != ""
            assert requests == [page_file.as_uri()], requests  # nothing fetched from anywhere
        finally:
            browser.close()
