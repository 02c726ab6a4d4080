""".github/scripts/release_outcome.py: the release's outcome from `pulumi up --event-log`.

The event logs in event_logs/ are real: written by the Pulumi CLI v3.259.0 built by
tools/build-pulumi.sh (`PULUMI_DEBUG_COMMANDS=true pulumi up --event-log FILE`), with the
`command` plugin 1.2.1 running commands over SSH against a local sshd, for a small program
with this project's resource names and types (`mcp:deploy:Server` "server" with
`command:remote:Command` children `server-deploy` and `server-release`, then
`mcp:deploy:SlackNotification` "slack" with `command:local:Command` "slack-post"), the
release command exiting as remote/release.sh does. Only the engine's debug lines and the
language host's traceback were left out. The stack's commit message (`mcp:release.message`) is
`Revert "deploy": ROLLED BACK to 0aa11bb, Process exited with status 10`.

- released.jsonl: deploy, release (exit 0), Slack: the update succeeded;
- unchanged.jsonl: the same again: every step `same`;
- rolled-back.jsonl: the release exited 10 after its `[release] FAILED: ... ROLLED BACK to ...`;
- rollback-failed.jsonl: the release exited 11 (`ACT NOW: ... rollback ... FAILED`);
- backup-failed.jsonl: the release exited 6 (its backup failed, nothing switched);
- deploy-failed.jsonl: the deploy step exited 7: the release never ran;
- slack-failed.jsonl: the release succeeded, then the Slack post (printing the commit message)
  exited 3.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from workflow_support import ROOT

SCRIPT = ROOT / ".github" / "scripts" / "release_outcome.py"
LOGS = Path(__file__).resolve().parent / "event_logs"
COMMIT_MESSAGE = 'Revert "deploy": ROLLED BACK to 0aa11bb, Process exited with status 10'
RELEASE_URN = (
    "urn:pulumi:production::mcp-deploy::mcp:deploy:Server$command:remote:Command::server-release"
)
DEPLOY_URN = (
    "urn:pulumi:production::mcp-deploy::mcp:deploy:Server$command:remote:Command::server-deploy"
)


def _module() -> Any:
    spec = importlib.util.spec_from_file_location("release_outcome", SCRIPT)
    assert spec and spec.loader, SCRIPT
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is made
    spec.loader.exec_module(module)
    return module


release_outcome = _module()


def events(name: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (LOGS / name).read_text().splitlines() if line]


def classify(evts: list[dict[str, Any]], update_outcome: str = "") -> tuple[str, int | None]:
    result = release_outcome.classify(evts, update_outcome)
    return str(result.outcome), result.exit_code


def diagnostic(urn: str, message: str, severity: str = "info") -> dict[str, Any]:
    """A diagnosticEvent as the engine writes one (see event_logs/)."""
    body: dict[str, Any] = {"urn": urn, "message": message, "color": "never", "severity": severity}
    if severity == "error":
        body["prefix"] = "error: "
    else:
        body["ephemeral"] = True
    return {"sequence": 0, "timestamp": 0, "diagnosticEvent": body}


def insert_before(
    evts: list[dict[str, Any]], kind: str, urn: str, new: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """`evts` with `new` inserted before the first `kind` event of `urn`."""
    for index, event in enumerate(evts):
        if kind in event and event[kind]["metadata"]["urn"] == urn:
            return [*evts[:index], *new, *evts[index:]]
    raise AssertionError(f"no {kind} for {urn}")


@pytest.mark.parametrize(
    ("log", "outcome", "exit_code"),
    [
        ("released.jsonl", "released", 0),
        ("unchanged.jsonl", "released", None),
        ("rolled-back.jsonl", "rolled-back", 10),
        ("rollback-failed.jsonl", "rollback-failed", 11),
        ("backup-failed.jsonl", "release-failed", 6),
        ("deploy-failed.jsonl", "not-released", None),
        ("slack-failed.jsonl", "released", 0),
    ],
)
def test_real_event_logs(log: str, outcome: str, exit_code: int | None) -> None:
    assert classify(events(log)) == (outcome, exit_code)


def test_the_real_logs_hold_what_the_tests_rely_on() -> None:
    """Guards the tests below: the release's failure really is in these logs, as free text too."""
    rolled_back = (LOGS / "rolled-back.jsonl").read_text()
    assert "[release] FAILED:" in rolled_back and "ROLLED BACK to" in rolled_back
    assert "Process exited with status 10: running" in rolled_back
    for name in ("slack-failed.jsonl", "deploy-failed.jsonl"):
        text = (LOGS / name).read_text()
        assert "ROLLED BACK to 0aa11bb" in text, name  # what `grep -q 'ROLLED BACK'` matched
        (prelude,) = [e["preludeEvent"] for e in events(name) if "preludeEvent" in e]
        assert json.loads(prelude["config"]["mcp:release"])["message"] == COMMIT_MESSAGE


def test_a_commit_message_saying_rolled_back_is_not_a_rollback() -> None:
    """The commit message says "ROLLED BACK ... Process exited with status 10"; it is in the
    update's config and in the Slack step's input, output and error (that step failed after
    the release succeeded). The release was not rolled back, and is not said to be."""
    slack = events("slack-failed.jsonl")
    slack_errors = [
        e["diagnosticEvent"]["message"]
        for e in slack
        if "diagnosticEvent" in e
        and e["diagnosticEvent"].get("severity") == "error"
        and e["diagnosticEvent"].get("urn", "").endswith("::slack-post")
    ]
    assert slack_errors and COMMIT_MESSAGE in slack_errors[0]
    assert classify(slack) == ("released", 0)
    # The same message in the config of an update that failed before the release.
    assert classify(events("deploy-failed.jsonl")) == ("not-released", None)


def test_rolled_back_text_in_another_steps_output_and_error_is_not_a_rollback() -> None:
    """Another step (here the deploy step, failing) prints the release's own words and its
    error starts with the same exit status: only the release resource's events count."""
    evts = insert_before(
        events("deploy-failed.jsonl"),
        "resOpFailedEvent",
        DEPLOY_URN,
        [
            diagnostic(
                DEPLOY_URN,
                f"[release] FAILED: x was unhealthy. ROLLED BACK to y ({COMMIT_MESSAGE})\n",
            ),
            diagnostic(
                DEPLOY_URN, 'Process exited with status 10: running "deploy.sh":\n', "error"
            ),
        ],
    )
    assert classify(evts) == ("not-released", None)


def test_rolled_back_text_in_the_releases_own_output_does_not_make_a_success_a_rollback() -> None:
    evts = insert_before(
        events("released.jsonl"),
        "resOutputsEvent",
        RELEASE_URN,
        [diagnostic(RELEASE_URN, f"[release] note: {COMMIT_MESSAGE}: ROLLED BACK\n")],
    )
    assert classify(evts) == ("released", 0)


def test_only_the_leading_exit_status_of_the_releases_error_counts() -> None:
    """release.sh exited 6; its output (after `running "...":`) says status 10: still 6."""
    evts = events("backup-failed.jsonl")
    for event in evts:
        body = event.get("diagnosticEvent")
        if body and body.get("severity") == "error" and body.get("urn") == RELEASE_URN:
            assert body["message"].startswith("Process exited with status 6: running ")
            body["message"] += "[release] ROLLED BACK\nProcess exited with status 10\n"
    assert classify(evts) == ("release-failed", 6)


def test_a_resource_of_another_type_named_like_the_release_is_ignored() -> None:
    impostor = RELEASE_URN.replace("command:remote:Command", "command:local:Command")
    evts = events("rolled-back.jsonl")
    for event in evts:
        for kind in ("resourcePreEvent", "resOutputsEvent", "resOpFailedEvent"):
            if kind in event and event[kind]["metadata"]["urn"] == RELEASE_URN:
                event[kind]["metadata"]["urn"] = impostor
                event[kind]["metadata"]["type"] = "command:local:Command"
        body = event.get("diagnosticEvent")
        if body and body.get("urn") == RELEASE_URN:
            body["urn"] = impostor
    assert classify(evts) == ("not-released", None)


@pytest.mark.parametrize(
    ("urn", "expected"),
    [
        (RELEASE_URN, True),
        (RELEASE_URN.replace("urn:pulumi:production::", "urn:pulumi:local::"), True),
        (RELEASE_URN + "x", False),
        (RELEASE_URN.replace("server-release", "server-restore"), False),
        (RELEASE_URN.replace("remote:Command", "local:Command"), False),
        ("server-release", False),
        ("urn:pulumi:production::mcp-deploy::x::y::server-release", False),
    ],
)
def test_is_release_urn(urn: str, expected: bool) -> None:
    assert release_outcome.is_release_urn(urn) is expected


def test_a_release_that_started_and_never_ended_is_unknown() -> None:
    """A killed `pulumi up` (job timeout): the release's start, no result, half a line."""
    lines = (LOGS / "rolled-back.jsonl").read_text().splitlines()
    error = '"message":"Process exited with status 10'
    (cut,) = [i for i, line in enumerate(lines) if error in line]
    truncated = [*lines[:cut], lines[cut][:80]]
    evts = release_outcome.read_events(truncated)
    assert len(evts) == cut
    assert classify(evts) == ("unknown", None)


@pytest.mark.parametrize(
    ("update_outcome", "expected"),
    [("skipped", "not-released"), ("failure", "unknown"), ("", "unknown")],
)
def test_no_event_log(tmp_path: Path, update_outcome: str, expected: str) -> None:
    result = release_outcome.classify_file(tmp_path / "missing.jsonl", update_outcome)
    assert (str(result.outcome), result.exit_code) == (expected, None)


@pytest.mark.parametrize(
    ("log", "outputs"),
    [
        ("rolled-back.jsonl", "outcome=rolled-back\nexit-code=10\n"),
        ("slack-failed.jsonl", "outcome=released\nexit-code=0\n"),
        ("deploy-failed.jsonl", "outcome=not-released\nexit-code=\n"),
    ],
)
def test_the_script_writes_github_output(tmp_path: Path, log: str, outputs: str) -> None:
    github_output = tmp_path / "github_output"
    github_output.write_text("earlier=kept\n")
    result = subprocess.run(
        [
            sys.executable,
            str(SCRIPT),
            "--event-log",
            str(LOGS / log),
            "--update-outcome",
            "failure",
        ],
        env={"GITHUB_OUTPUT": str(github_output), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert github_output.read_text() == "earlier=kept\n" + outputs
    assert result.stdout.startswith("release outcome: ")
