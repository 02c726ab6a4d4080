"""A canary release as the prober saw it: its steps, from the scripts' own log lines
(`canary step 1/3 (10%): ... from t=<epoch>` ... `canary step 1/3 (10%) passed at t=<epoch>`,
remote/lib/canary.sh), and per step the new version's share of the prober's requests and the
failures. Used by tests/e2e/test_canary.py and bench/run.py; `python -m local.canary` runs a
canary `pulumi up` under a prober and prints the steps (local/demo.sh --strategy canary)."""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from dataclasses import dataclass

from local.prober import Prober, ProbeReport

STEP_START = re.compile(r"canary step (\d+)/(\d+) \((\d+)%\): .*; from t=([0-9.]+)")
STEP_END = re.compile(r"canary step (\d+)/\d+ \((\d+)%\) (passed|FAILED) at t=([0-9.]+)")
# After a step's first log line the script writes the intent and the proxy loads its config:
# requests sent in this time may still go by the previous step's split.
SETTLE_S = 0.5


@dataclass(frozen=True)
class Step:
    number: int
    percent: int
    start: float  # epoch seconds
    end: float
    outcome: str  # "passed" or "FAILED"


def canary_steps(log: str, after: float) -> list[Step]:
    """The steps logged (history.log or `pulumi up`'s output) since epoch time `after`."""
    starts: dict[int, tuple[int, float]] = {}
    steps: list[Step] = []
    for line in log.splitlines():
        if match := STEP_START.search(line):
            if float(match[4]) >= after:
                starts[int(match[1])] = (int(match[3]), float(match[4]))
        elif (match := STEP_END.search(line)) and int(match[1]) in starts:
            percent, start = starts.pop(int(match[1]))
            step = Step(int(match[1]), percent, start, float(match[4]), match[3])
            if step not in steps:  # `pulumi up` prints a failed step's lines twice
                steps.append(step)
    return steps


def step_figures(report: ProbeReport, version: str, steps: list[Step]) -> list[dict[str, object]]:
    """Per step: the requests the prober sent, the share `version` answered (after SETTLE_S),
    and how many failed."""
    rows: list[dict[str, object]] = []
    for step in steps:
        share, sent = report.share(version, step.start + SETTLE_S, step.end)
        window = report.between(step.start, step.end)
        rows.append(
            {
                "step": f"{step.number} ({step.percent}%)",
                "outcome": step.outcome,
                "seconds": round(step.end - step.start, 1),
                "requests": sent,
                "new_share": round(share, 3),
                "failed": sum(1 for s in window if s.status != 200),
            }
        )
    return rows


def watch(url: str, version: str, command: list[str], rate: float = 20.0) -> int:
    """Runs `command` (a `pulumi up` of a canary) with its output streamed, under a prober on
    `url`; then prints, per canary step, the share of requests `version` answered and the
    failures. Returns the command's exit code."""
    prober = Prober(url, rate=rate).start()
    after = prober.started_epoch
    lines: list[str] = []
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    ) as process:
        assert process.stdout is not None
        for line in process.stdout:
            sys.stdout.write(line)
            lines.append(line)
    report = prober.stop()
    steps = canary_steps("".join(lines), after)
    print(f"\n[canary] what a prober at {rate:g} requests/s on {url} saw, per step:")
    if not steps:
        print("[canary] no canary step was logged (not a canary release, or it stopped first)")
    for row in step_figures(report, version, steps):
        print(
            f"[canary]   step {row['step']}: {row['outcome']} after {row['seconds']} s; "
            f"{row['requests']} requests, {float(str(row['new_share'])):.1%} answered by "
            f"{version}, {row['failed']} failed"
        )
    print(f"[canary]   in all: {report.sent} requests, {len(report.failed)} failed")
    return process.returncode


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m local.canary",
        description="Run a canary `pulumi up` under a prober and print each step's share.",
    )
    parser.add_argument(
        "--url", required=True, help="what to probe, e.g. http://127.0.0.1:8000/api/v1/version"
    )
    parser.add_argument("--version", required=True, help="the new version's name in the answers")
    parser.add_argument("--rate", type=float, default=20.0, help="requests per second (20)")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- pulumi up ...")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("give the command to run after --, e.g. -- pulumi up --stack local --yes")
    return watch(args.url, args.version, command, args.rate)


if __name__ == "__main__":
    sys.exit(main())
