"""Tells what happened to the release from the engine events of `pulumi up`, never from free text.

    PULUMI_DEBUG_COMMANDS=true pulumi up ... --event-log "$RUNNER_TEMP/pulumi-up-events.jsonl"
    python .github/scripts/release_outcome.py --event-log "$RUNNER_TEMP/pulumi-up-events.jsonl" \\
        --update-outcome "${{ steps.pulumi.outcome }}"

The deploy's only step that changes what serves traffic is the `release` command
(components/server.py: `ServerDeployment("server")`, step `release`: the resource
`command:remote:Command` named `server-release`). Its outcome is read from the engine's own
structured events for that one resource: `resOutputsEvent` (it succeeded), `resOpFailedEvent`
(it failed) and, for the exit status, the error `diagnosticEvent` the engine attaches to that
resource, whose message starts with what the SSH library says (`Process exited with status N`);
remote/release.sh exits 10 after an automatic rollback and 11 when the rollback failed too
(remote/README.md, "Exit codes").

Nothing a commit message can hold changes the answer: the message (`mcp:release.message`) only
reaches the stack config and the Slack notification's resource; the events of other resources,
the output lines of any step and the prelude's config are never read, and of the release's own
error only the leading status written by the SSH client counts.

Writes `outcome=<released|rolled-back|rollback-failed|release-failed|not-released|unknown>` and
`exit-code=<the release script's exit status, or empty>` to $GITHUB_OUTPUT (or --github-output),
and one line for people on stdout. Exits 0 whatever the outcome (2 on a usage error).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

RELEASE_TYPE = "command:remote:Command"
RELEASE_NAME = "server-release"
# remote/README.md "Exit codes" (remote/lib/log.sh: E_ROLLED_BACK, E_ROLLBACK_FAILED).
EXIT_ROLLED_BACK = 10
EXIT_ROLLBACK_FAILED = 11

# Operations after which the release step's result is the one the stack now records.
_DONE_OPS = frozenset({"same", "create", "update", "replace", "create-replacement"})
# Operations that run the release command (a failed delete of an old one runs nothing).
_RUN_OPS = frozenset({"create", "update", "replace", "create-replacement"})
# golang.org/x/crypto/ssh ExitError, which pulumi-command puts first in the error it returns.
_EXIT_STATUS = re.compile(r"Process exited with status (\d+)(?=[:. ]|$)")


class Outcome(StrEnum):
    RELEASED = "released"  # the release step ran (or had nothing to do) and succeeded
    ROLLED_BACK = "rolled-back"  # unhealthy; the previous version was restored and serves
    ROLLBACK_FAILED = "rollback-failed"  # unhealthy, and the rollback failed too: act now
    RELEASE_FAILED = "release-failed"  # the release step failed otherwise (see the exit code)
    NOT_RELEASED = "not-released"  # the update stopped before the release step ran
    UNKNOWN = "unknown"  # no usable event log, or the release started and never ended


@dataclass(frozen=True)
class ReleaseResult:
    outcome: Outcome
    exit_code: int | None
    detail: str


def is_release_urn(urn: str) -> bool:
    """`urn:pulumi:<stack>::<project>::<parent types>$command:remote:Command::server-release`."""
    parts = urn.split("::")
    if len(parts) != 4 or not parts[0].startswith("urn:pulumi:"):
        return False
    resource_type = parts[2].rsplit("$", 1)[-1]
    return resource_type == RELEASE_TYPE and parts[3] == RELEASE_NAME


def read_events(lines: Iterable[str]) -> list[dict[str, Any]]:
    """The JSON objects of an event log, one per line; a truncated or garbled line is skipped
    (a killed `pulumi up` can leave half a line)."""
    events: list[dict[str, Any]] = []
    for line in lines:
        if not line.strip():
            continue
        try:
            event = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(event, dict):
            events.append(event)
    return events


def _step_metadata(body: Any) -> dict[str, Any] | None:
    if not isinstance(body, dict) or body.get("planning"):
        return None
    metadata = body.get("metadata")
    if not isinstance(metadata, dict):
        return None
    if metadata.get("type") != RELEASE_TYPE or not is_release_urn(str(metadata.get("urn", ""))):
        return None
    return metadata


def exit_status(message: str) -> int | None:
    """The exit status at the very start of the release's error (`Process exited with status
    10: running "...":` then the script's output); anything later in the message is ignored."""
    match = _EXIT_STATUS.match(message)
    return int(match.group(1)) if match else None


def classify(events: list[dict[str, Any]], update_outcome: str = "") -> ReleaseResult:
    """What happened to the release step, from the events of one `pulumi up`."""
    started = False
    done_op: str | None = None
    failed_op: str | None = None
    last_error = ""  # the release's latest error diagnostic: the engine sends it just before
    failure = ""  # the resOpFailedEvent it explains
    update_result: str | None = None
    for event in events:
        if (metadata := _step_metadata(event.get("resourcePreEvent"))) is not None:
            started = True
        elif (metadata := _step_metadata(event.get("resOutputsEvent"))) is not None:
            if metadata.get("op") in _DONE_OPS:
                done_op = str(metadata["op"])
        elif (metadata := _step_metadata(event.get("resOpFailedEvent"))) is not None:
            if metadata.get("op") in _RUN_OPS:
                failed_op, failure = str(metadata["op"]), last_error
        elif isinstance(diagnostic := event.get("diagnosticEvent"), dict):
            if diagnostic.get("severity") == "error" and is_release_urn(
                str(diagnostic.get("urn", ""))
            ):
                last_error = str(diagnostic.get("message", ""))
        elif isinstance(summary := event.get("summaryEvent"), dict) and not summary.get(
            "isPreview"
        ):
            update_result = str(summary.get("result", ""))

    if failed_op is not None:
        code = exit_status(failure)
        if code == EXIT_ROLLED_BACK:
            return ReleaseResult(
                Outcome.ROLLED_BACK,
                code,
                "the release was unhealthy and was rolled back: the previous version is serving",
            )
        if code == EXIT_ROLLBACK_FAILED:
            return ReleaseResult(
                Outcome.ROLLBACK_FAILED,
                code,
                "the release was unhealthy AND its rollback failed: the app is probably down",
            )
        if code is not None:
            return ReleaseResult(
                Outcome.RELEASE_FAILED,
                code,
                f"the release step failed (release.sh exited {code}, see remote/README.md)",
            )
        return ReleaseResult(
            Outcome.RELEASE_FAILED, None, "the release step failed before its script ended"
        )
    if done_op is not None:
        return ReleaseResult(
            Outcome.RELEASED,
            0 if done_op != "same" else None,
            "the release succeeded" if done_op != "same" else "the release had nothing to do",
        )
    if started:
        return ReleaseResult(
            Outcome.UNKNOWN, None, "the release step started and has no result in the event log"
        )
    if not events:
        if update_outcome == "skipped":
            return ReleaseResult(Outcome.NOT_RELEASED, None, "pulumi up did not run")
        return ReleaseResult(Outcome.UNKNOWN, None, "no engine events were recorded")
    if update_result == "succeeded":
        return ReleaseResult(Outcome.NOT_RELEASED, None, "the update ran no release step")
    return ReleaseResult(
        Outcome.NOT_RELEASED, None, "the update stopped before the release step ran"
    )


def classify_file(path: Path, update_outcome: str = "") -> ReleaseResult:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        text = ""
    return classify(read_events(text.splitlines()), update_outcome)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--event-log", type=Path, required=True, help="pulumi up --event-log FILE")
    parser.add_argument(
        "--update-outcome",
        default="",
        help="the outcome of the step that ran pulumi up (success, failure, skipped, cancelled)",
    )
    parser.add_argument(
        "--github-output",
        type=Path,
        default=Path(os.environ["GITHUB_OUTPUT"]) if os.environ.get("GITHUB_OUTPUT") else None,
        help="where to append outcome= and exit-code= (default: $GITHUB_OUTPUT)",
    )
    args = parser.parse_args(argv)
    result = classify_file(args.event_log, args.update_outcome)
    code = "" if result.exit_code is None else str(result.exit_code)
    print(f"release outcome: {result.outcome} ({result.detail})")
    if args.github_output is not None:
        with args.github_output.open("a", encoding="utf-8") as output:
            output.write(f"outcome={result.outcome}\nexit-code={code}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
