"""oncall.py's pure parts: the audit timeline's parsing and joining, deploy metrics, the
time to recover, status drift and formatting, backups rows, the dashboard's HTML, and the
remote command lines (run through the scripts' own --check)."""

from __future__ import annotations

import json
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest

from components.server_access import ServerAccess
from ops import audit, backups, commands, dashboard, status

ROOT = Path(__file__).resolve().parents[2]

LEDGER = "\n".join(
    json.dumps(row)
    for row in [
        {
            "at": "2026-12-01T10:00:05Z",
            "event": "served",
            "image": "r/o/app:v1",
            "digest": "sha256:" + "a" * 64,
            "by": "alice",
            "via": "release",
            "detail": "",
            "backup_id": "",
        },
        {
            "at": "2026-12-01T11:00:08Z",
            "event": "failed",
            "image": "r/o/app:v2",
            "digest": "",
            "by": "bob (run 7)",
            "via": "release",
            "detail": "unhealthy",
            "backup_id": "20261201_110001",
        },
        {
            "at": "2026-12-01T11:00:10Z",
            "event": "served",
            "image": "r/o/app:v1",
            "digest": "sha256:" + "a" * 64,
            "by": "bob (run 7)",
            "via": "auto-rollback",
            "detail": "healthy again",
            "backup_id": "20261201_110001",
        },
        {
            "at": "2026-12-01T12:00:00Z",
            "event": "rolled-back-from",
            "image": "r/o/app:v1",
            "digest": "sha256:" + "a" * 64,
            "by": "carol",
            "via": "rollback",
            "detail": "slow",
            "backup_id": "",
            "freeze_overridden": "frozen by dan since 2026-12-01T11:30:00Z: incident",
        },
    ]
)
METRICS = "\n".join(
    json.dumps(row)
    for row in [
        {
            "at": "2026-12-01T10:00:02Z",
            "script": "deploy",
            "outcome": "success",
            "exit_code": 0,
            "image": "r/o/app:v1",
            "pull_s": "1.500",
            "total_s": "2.000",
        },
        {
            "at": "2026-12-01T10:00:05Z",
            "script": "release",
            "outcome": "success",
            "exit_code": 0,
            "reason": "",
            "image": "r/o/app:v1",
            "previous_image": "",
            "backup_id": "20261201_100001",
            "by": "alice",
            "backup_s": "0.500",
            "up_s": "1.000",
            "healthy_s": "1.250",
            "pull_s": "",
            "total_s": "3.000",
            "freeze_overridden": "",
        },
        {
            "at": "2026-12-01T11:00:10Z",
            "script": "release",
            "outcome": "rolled-back",
            "exit_code": 10,
            "reason": "FAILED: r/o/app:v2 was unhealthy",
            "image": "r/o/app:v2",
            "previous_image": "r/o/app:v1",
            "backup_id": "20261201_110001",
            "by": "bob (run 7)",
            "backup_s": "0.400",
            "up_s": "1.000",
            "healthy_s": "",
            "total_s": "9.000",
        },
        {
            "at": "2026-12-01T11:40:00Z",
            "script": "deploy",
            "outcome": "frozen",
            "exit_code": 14,
            "reason": "deploys are FROZEN",
            "image": "r/o/app:v3",
            "total_s": "0.100",
        },
    ]
)
HISTORY = (
    "2026-12-01T11:30:00+0100 [freeze] deploys FROZEN: frozen by dan since "
    "2026-12-01T10:30:00Z: incident\n"
    "2026-12-01T13:00:00+0000 [freeze] freeze released by dan (it was frozen by dan since x: y)\n"
)
UPDATE = {
    "version": 3,
    "kind": "update",
    "startTime": "2026-12-01T11:00:00Z",
    "endTime": "2026-12-01T11:00:12Z",
    "message": "deploy v2",
    "result": "failed",
    "environment": {"git.head": "abc123"},
    "config": {"mcp:release.author": {"value": "bob (run 7)", "secret": False}},
    "resourceChanges": {"same": 3, "update": 2},
}


def test_metrics_get_their_pull_time_and_a_timeline_joins_the_update() -> None:
    events = audit.timeline([UPDATE], LEDGER, METRICS, HISTORY)
    assert [e.at for e in events] == sorted(e.at for e in events)
    releases = [e for e in events if e.kind == "release"]
    assert releases[0].details["timings"] == {
        "backup_s": 0.5, "up_s": 1.0, "healthy_s": 1.25, "total_s": 3.0, "pull_s": 1.5
    }  # fmt: skip
    failed = releases[1]
    assert failed.result == "rolled-back" and failed.details["update"] == 3
    assert failed.details["reason"].startswith("FAILED")
    update = next(e for e in events if e.source == "pulumi")
    assert update.actor == "bob (run 7)" and update.duration_s == 12.0
    assert update.what == "pulumi update (deploy v2): 2 update" and update.result == "failed"
    assert update.details["commit"] == "abc123"
    kinds = [e.kind for e in events if e.source == "server"]
    assert "served" in kinds and "rolled-back-from" in kinds  # served via release: in its run
    freeze = [e for e in events if e.kind == "freeze"]
    assert freeze[0].at == "2026-12-01T10:30:00Z" and freeze[0].actor == "dan"  # +0100 -> UTC
    assert freeze[1].result == "released"
    mark = next(e for e in events if e.kind == "rolled-back-from")
    assert "incident" in mark.details["freeze_overridden"]


def test_summary_success_rate_and_time_to_recover() -> None:
    facts = audit.summary(audit.timeline([UPDATE], LEDGER, METRICS, HISTORY))
    assert facts["releases"] == 2 and facts["succeeded"] == 1 and facts["success_rate"] == 0.5
    assert facts["frozen_refusals"] == 1
    # the failed release started at 11:00:01 and v1 served again at 11:00:10: 9 s; the v2
    # "failed" mark at 11:00:08: 2 s; the rolled-back-from at 12:00 never recovered here.
    assert facts["recoveries"] == 2 and facts["mean_time_to_recover_s"] == pytest.approx(5.5)


def test_a_torn_metrics_line_is_an_error_naming_it() -> None:
    with pytest.raises(audit.AuditError, match="line 2 of the server's deploy metrics"):
        audit.parse_metrics('{"at": "2026-12-01T10:00:00Z"}\n{"at": "2026-12')


def test_timeline_formatting() -> None:
    text = audit.format_timeline(audit.timeline([UPDATE], LEDGER, METRICS, HISTORY))
    assert text.splitlines()[0].startswith("WHEN (UTC)")
    assert "release v2 (replacing v1) [backup 0.4s, up 1.0s] -- FAILED" in text
    assert audit.format_timeline([]).startswith("no event yet")


@pytest.mark.parametrize(
    ("stack", "running", "digest", "drifted"),
    [
        ("r/o/app:v1@sha256:" + "a" * 64, "r/o/app:v1@sha256:" + "a" * 64, "", False),
        ("r/o/app:v1@sha256:" + "a" * 64, "r/o/app:v1", "sha256:" + "a" * 64, False),
        ("r/o/app:v1@sha256:" + "a" * 64, "r/o/app:v1", "sha256:" + "b" * 64, True),
        ("r/o/app:v1", "r/o/app:v2", "", True),
        ("r/o/app:v1", "", "", True),
        ("", "", "", False),
    ],
)
def test_drift(stack: str, running: str, digest: str, drifted: bool) -> None:
    assert bool(status.drift(stack, running, digest)) is drifted


def test_status_build_and_format() -> None:
    from components.release_ledger import parse

    remote = {
        "running_image": "r/o/app:v1", "colour": "green", "container_state": "running",
        "healthy": True, "health": '{"version":"v1"}', "frozen": True, "frozen_by": "dan",
        "frozen_at": "2026-12-01T11:30:00Z", "frozen_reason": "incident", "lock_holder": "",
    }  # fmt: skip
    found = status.build(
        "prod", "srv", remote, parse(LEDGER), {"image": "r/o/app:v1", "url": "u"}, None
    )
    assert found["since"] == "2026-12-01T11:00:10Z" and found["deployed_by"] == "bob (run 7)"
    assert found["commit"] == "v1" and found["drift"] == "" and found["colour"] == "green"
    text = status.format_status(found, datetime(2026, 12, 1, 12, 0, 10, tzinfo=UTC))
    assert "since        2026-12-01T11:00:10Z (1h ago)" in text
    assert "FROZEN by dan since 2026-12-01T11:30:00Z: incident" in text
    assert "output       url = u" in text and "drift        none" in text


def test_backups_rows() -> None:
    rows = backups.parse(
        '{"id": "20261201_100001", "archive": "/b/x", "created_at": "2026-12-01T10:00:01Z", '
        '"size_bytes": 2048, "image": "", "verified": false, "error": "not gzip"}\n'
    )
    text = backups.format_backups(rows)
    assert "2.0 KiB" in text and "NO" in text and "(nothing deployed yet)" in text
    assert "(not gzip)" in text
    assert backups.format_backups([]) == "no backups yet"


def test_dashboard_is_self_contained() -> None:
    events = audit.timeline([UPDATE], LEDGER, METRICS, HISTORY)
    html = dashboard.render({"prod": events}, datetime(2026, 12, 2, tzinfo=UTC))
    assert "<script" not in html and "https://" not in html and 'src="http' not in html
    assert html.count('class="bar ') == 2 and "50%" in html
    assert 'data-stack="prod"' in html


SERVER = ServerAccess(
    "h", 22, "u", "ssh-ed25519 AAAA", deploy_dir="/opt/mcp", scripts_dir="/opt/mcp/.deploy/bin"
)


def _check(words: list[str]) -> None:
    """The command line, run through the local copy of its script's --check."""
    script = ROOT / "remote" / Path(words[1]).name
    proc = subprocess.run(
        ["bash", str(script), *words[2:], "--check"], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == {"valid": True}


def test_command_lines_pass_the_scripts_checks(tmp_path: Path) -> None:
    from components.settings import AppSettings

    app = AppSettings(
        compose_source="c.yml", compose_file="c.yml", env_file_name=".env.p", service="api",
        health_url="http://localhost:8000/h", health_attempts=3, health_timeout_seconds=9,
        public_url="https://x", lock_timeout_seconds=5, compose_project="mcp",
        strategy="recreate", proxy=None, health_status=204,
    )  # fmt: skip
    _check(commands.status(SERVER, app))
    _check(commands.logs(SERVER, app, lines=5, since="10m", follow=True))
    _check(commands.freeze(SERVER, "acquire", actor="alice (run 1)", message="incident 42"))
    _check(commands.freeze(SERVER, "release", actor="alice"))
    _check(commands.freeze(SERVER, "status", actor=""))
    _check(commands.backups(SERVER, "/opt/mcp-backups", verify=False))
    assert commands.status(SERVER, app)[-2:] == ["--health-status", "204"]
