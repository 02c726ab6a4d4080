"""A canary release as the prober saw it: its steps, from the scripts' own log lines
(`canary step 1/3 (10%): ... from t=<epoch>` ... `canary step 1/3 (10%) passed at t=<epoch>`,
remote/lib/canary.sh), and per step the new version's share of the prober's requests and the
failures. Used by tests/e2e/test_canary.py and bench/run.py."""

from __future__ import annotations

import re
from dataclasses import dataclass

from local.prober import ProbeReport

STEP_START = re.compile(r"canary step (\d+)/(\d+) \((\d+)%\): .*; from t=([0-9.]+)")
STEP_END = re.compile(r"canary step (\d+)/\d+ \((\d+)%\) (passed|FAILED) at t=([0-9.]+)")
# After a step's first log line the script writes the intent and the proxy loads its config:
# requests sent in this time may still go by the previous step's weights.
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
            steps.append(Step(int(match[1]), percent, start, float(match[4]), match[3]))
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
