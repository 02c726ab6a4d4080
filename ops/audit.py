"""The audit timeline: Pulumi's update history joined with the server's release ledger, deploy
metrics and freeze log, one event per line with who, what changed, the result and how long.

Pure data: `oncall.py audit` reads the sources (`pulumi stack history --json` through the
Automation API, `.deploy/releases.jsonl`, `.deploy/metrics.jsonl`, the `[freeze]` lines of
`.deploy/history.log`) and hands their text here; the dashboard renders the same events.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from components.release_ledger import image_tag, parse

PHASES = ("backup_s", "pull_s", "up_s", "healthy_s", "total_s")
OUTCOMES = ("success", "rolled-back", "rollback-failed", "frozen", "failed")


@dataclass(frozen=True)
class Run:
    """One run of deploy.sh, release.sh or restore.sh, from `.deploy/metrics.jsonl`."""

    at: str  # UTC, when it ended
    script: str
    outcome: str
    exit_code: int
    reason: str
    image: str
    previous_image: str
    backup_id: str
    by: str
    timings: dict[str, float]  # the PHASES it reached, seconds
    freeze_overridden: str

    @property
    def started(self) -> datetime:
        return parse_time(self.at) - timedelta(seconds=self.timings.get("total_s", 0.0))


@dataclass(frozen=True)
class Event:
    """One line of the timeline."""

    at: str  # UTC, ISO 8601 with Z
    source: str  # pulumi | server
    kind: str  # update/preview/refresh..., release/restore/deploy, served/failed/..., freeze
    actor: str
    what: str
    result: str
    duration_s: float | None
    details: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class AuditError(Exception):
    """A source could not be read; the message names it."""


def parse_time(text: str) -> datetime:
    """`2026-12-01T10:00:00Z`, `...+00:00` or Pulumi's `2026-12-01 10:00:00 +0000 UTC`."""
    text = text.strip()
    match = re.fullmatch(
        r"(\d{4}-\d\d-\d\d)[ T](\d\d:\d\d:\d\d)(?:\.\d+)?\s*(Z|[+-]\d\d:?\d\d)?.*", text
    )
    if not match:
        raise AuditError(f"not a time: {text!r}")
    day, clock, zone = match.groups()
    stamp = datetime.fromisoformat(f"{day}T{clock}")
    if zone and zone != "Z":
        sign = 1 if zone[0] == "+" else -1
        digits = zone[1:].replace(":", "")
        stamp -= sign * timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
    return stamp.replace(tzinfo=UTC)


def iso(stamp: datetime) -> str:
    return stamp.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _json_lines(text: str, what: str) -> list[dict[str, Any]]:
    rows = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError as error:
            raise AuditError(
                f"line {number} of {what} is not JSON ({error}): {line[:200]!r}"
            ) from error
        if not isinstance(row, dict):
            raise AuditError(f"line {number} of {what} is not an object: {line[:200]!r}")
        rows.append(row)
    return rows


def parse_metrics(text: str) -> list[Run]:
    """`.deploy/metrics.jsonl` (remote/lib/metrics.sh), oldest first."""
    runs = []
    for row in _json_lines(text, "the server's deploy metrics (.deploy/metrics.jsonl)"):
        timings = {}
        for phase in PHASES:
            value = str(row.get(phase, "") or "")
            if value:
                timings[phase] = float(value)
        runs.append(
            Run(
                at=str(row["at"]),
                script=str(row.get("script", "")),
                outcome=str(row.get("outcome", "")),
                exit_code=int(row.get("exit_code", 0)),
                reason=str(row.get("reason", "")),
                image=str(row.get("image", "")),
                previous_image=str(row.get("previous_image", "")),
                backup_id=str(row.get("backup_id", "")),
                by=str(row.get("by", "")),
                timings=timings,
                freeze_overridden=str(row.get("freeze_overridden", "")),
            )
        )
    return runs


def with_pull_times(runs: list[Run]) -> list[Run]:
    """Each release gets the pull time of the deploy.sh run that staged its image (the latest
    successful one before it): one release, all its step timings."""
    pulled: dict[str, float] = {}
    joined = []
    for run in runs:
        if run.script == "deploy" and run.outcome == "success" and "pull_s" in run.timings:
            pulled[run.image] = run.timings["pull_s"]
        elif run.script == "release" and run.image in pulled and "pull_s" not in run.timings:
            run = Run(**{**asdict(run), "timings": {**run.timings, "pull_s": pulled[run.image]}})
        joined.append(run)
    return joined


def _short(image: str) -> str:
    return image_tag(image) or image or "nothing"


def run_event(run: Run) -> Event:
    if run.script == "release":
        what = f"release {_short(run.image)} (replacing {_short(run.previous_image)})"
    elif run.script == "restore":
        what = (
            f"restore backup {run.backup_id}: {_short(run.image)} "
            f"(replacing {_short(run.previous_image)})"
        )
    else:
        what = f"stage {_short(run.image)} (pull)"
    details: dict[str, Any] = {
        "image": run.image,
        "previous_image": run.previous_image,
        "backup_id": run.backup_id,
        "timings": run.timings,
        "exit_code": run.exit_code,
    }
    if run.reason:
        details["reason"] = run.reason
    if run.freeze_overridden:
        details["freeze_overridden"] = run.freeze_overridden
        what += " [FREEZE OVERRIDDEN]"
    return Event(
        at=run.at,
        source="server",
        kind=run.script,
        actor=run.by,
        what=what,
        result=run.outcome,
        duration_s=run.timings.get("total_s"),
        details=details,
    )


def ledger_events(text: str) -> list[Event]:
    """The release ledger's marks (what no run of a script records: a rollback's or a smoke
    test's verdict) and its served lines from automatic rollbacks."""
    events = []
    raw = _json_lines(text, "the server's release ledger (.deploy/releases.jsonl)")
    for entry, row in zip(parse(text), raw, strict=True):
        if entry.event == "served" and entry.via != "auto-rollback":
            continue  # the release or restore run says it, with its timings
        what = {
            "served": f"{_short(entry.image)} serves again (automatic rollback)",
            "failed": f"{_short(entry.image)} marked failed",
            "rolled-back-from": f"{_short(entry.image)} rolled back from",
        }[entry.event]
        details: dict[str, Any] = {"image": entry.image, "digest": entry.digest, "via": entry.via}
        if row.get("freeze_overridden"):
            details["freeze_overridden"] = row["freeze_overridden"]
        events.append(
            Event(
                at=entry.at,
                source="server",
                kind=entry.event,
                actor=entry.by,
                what=f"{what}: {entry.detail}" if entry.detail else what,
                result="recorded",
                duration_s=None,
                details=details,
            )
        )
    return events


FREEZE_LINE = re.compile(
    r"^(\S+) \[freeze\] (deploys FROZEN: frozen by (.*?) since \S+: (.*)"
    r"|freeze released by (.*?) \(it was .*\))$"
)


def freeze_events(history_lines: str) -> list[Event]:
    """The `[freeze]` lines of `.deploy/history.log` (freeze.sh): acquired, released."""
    events = []
    for line in history_lines.splitlines():
        match = FREEZE_LINE.match(line.strip())
        if not match:
            continue
        stamp, _, froze_by, reason, released_by = match.groups()
        at = iso(parse_time(stamp))
        if froze_by is not None:
            events.append(
                Event(at, "server", "freeze", froze_by, f"deploys frozen: {reason}", "frozen", None)
            )
        else:
            events.append(
                Event(
                    at, "server", "freeze", released_by, "deploy freeze released", "released", None
                )
            )
    return events


def update_event(update: Any) -> Event:
    """One entry of `pulumi stack history` (an automation `UpdateSummary`, or its JSON)."""
    get = (
        (lambda key, default=None: update.get(key, default))
        if isinstance(update, dict)
        else (lambda key, default=None: getattr(update, key, default))
    )
    start = _as_time(get("start_time") or get("startTime"))
    end = _as_time(get("end_time") or get("endTime"))
    config = get("config") or {}
    author = config.get("mcp:release.author")
    if author is not None and not isinstance(author, str):
        author = getattr(author, "value", None) or (
            author.get("value") if isinstance(author, dict) else None
        )
    release = config.get("mcp:release")
    if author is None and release is not None:
        value = getattr(release, "value", None) or (
            release.get("value") if isinstance(release, dict) else release
        )
        try:
            author = json.loads(value).get("author") if isinstance(value, str) else None
        except ValueError:
            author = None
    environment = get("environment") or {}
    actor = author or environment.get("git.author") or environment.get("exec.kind") or "unknown"
    changes = get("resource_changes") or get("resourceChanges") or {}
    changed = ", ".join(
        f"{count} {op}" for op, count in sorted(changes.items()) if op != "same" and count
    )
    message = str(get("message") or "")
    message = message if len(message) <= 80 else message[:77] + "..."
    what = (
        f"pulumi {get('kind')}"
        + (f" ({message})" if message else "")
        + (f": {changed}" if changed else ": no change")
    )
    return Event(
        at=iso(start),
        source="pulumi",
        kind=str(get("kind")),
        actor=str(actor),
        what=what,
        result=str(get("result")),
        duration_s=(end - start).total_seconds() if end else None,
        details={
            "version": get("version"),
            "commit": environment.get("git.head", ""),
            "resource_changes": changes,
        },
    )


def _as_time(value: Any) -> datetime:
    if value is None:
        return datetime.fromtimestamp(0, UTC)
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    return parse_time(str(value))


def timeline(
    updates: list[Any], ledger_text: str, metrics_text: str, history_text: str
) -> list[Event]:
    """Every event, oldest first; each server run names the Pulumi update it ran in."""
    pulumi_events = [update_event(u) for u in updates]
    runs = with_pull_times(parse_metrics(metrics_text))
    server = [run_event(r) for r in runs] + ledger_events(ledger_text) + freeze_events(history_text)
    joined = []
    for event in server:
        stamp = parse_time(event.at)
        for update in pulumi_events:
            start = parse_time(update.at)
            end = start + timedelta(seconds=update.duration_s or 0)
            if start <= stamp <= end + timedelta(seconds=2):
                event = Event(
                    **{
                        **asdict(event),
                        "details": {**event.details, "update": update.details["version"]},
                    }
                )
                break
        joined.append(event)
    return sorted(pulumi_events + joined, key=lambda e: (e.at, e.source != "pulumi"))


def summary(events: list[Event]) -> dict[str, Any]:
    """Success rate of releases and restores, their durations, and the time to recover: from
    each failure (a release that did not succeed, a version marked failed or rolled back
    from) to the next time a version served healthy."""
    runs = [
        e
        for e in events
        if e.source == "server" and e.kind in ("release", "restore") and e.result != "frozen"
    ]
    ok = [e for e in runs if e.result == "success"]
    recoveries = []
    served_times = sorted(
        parse_time(e.at)
        for e in events
        if (e.kind in ("release", "restore") and e.result == "success") or e.kind == "served"
    )
    for event in events:
        if event.source != "server":
            continue
        failed_run = event.kind == "release" and event.result in (
            "rolled-back",
            "rollback-failed",
            "failed",
        )
        if not (failed_run or event.kind in ("failed", "rolled-back-from")):
            continue
        start = (
            parse_time(event.at) - timedelta(seconds=event.duration_s or 0)
            if failed_run
            else parse_time(event.at)
        )
        after = [t for t in served_times if t >= start]
        if after:
            recoveries.append((after[0] - start).total_seconds())
    return {
        "releases": len(runs),
        "succeeded": len(ok),
        "success_rate": (len(ok) / len(runs)) if runs else None,
        "frozen_refusals": sum(
            1 for e in events if e.kind in ("deploy", "release", "restore") and e.result == "frozen"
        ),
        "recoveries": len(recoveries),
        "mean_time_to_recover_s": (sum(recoveries) / len(recoveries)) if recoveries else None,
        "mean_release_s": (sum(e.duration_s or 0 for e in ok) / len(ok)) if ok else None,
    }


def format_timeline(events: list[Event]) -> str:
    if not events:
        return "no event yet (no pulumi update, nothing recorded on the server)"
    lines = [f"{'WHEN (UTC)':<21} {'SOURCE':<7} {'ACTOR':<26} {'RESULT':<16} {'TOOK':>7}  WHAT"]
    for e in events:
        took = f"{e.duration_s:.1f}s" if e.duration_s is not None else "-"
        what = e.what
        timings = e.details.get("timings") or {}
        steps = [f"{k[:-2]} {v:.1f}s" for k, v in timings.items() if k != "total_s"]
        if steps:
            what += f" [{', '.join(steps)}]"
        if e.details.get("reason"):
            what += f" -- {e.details['reason'][:160]}"
        lines.append(
            f"{e.at:<21} {e.source:<7} {e.actor[:26]:<26} {e.result[:16]:<16} {took:>7}  {what}"
        )
    return "\n".join(lines)
