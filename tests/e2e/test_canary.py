"""Canary deploys through the engine (`mcp:app.strategy: canary`), under a prober sending 40
requests per second to the public port: the new version's share at each step, as the prober
sees it, is the step's within a stated tolerance and no request fails on a good canary; a
version that fails half of its requests (flaky-500, healthy on /api/v1/health) is stopped by
the gate at its first step, its failures stay within that step's share, and none follow the
abort; a version that answers every request in 800 ms (laggy) is stopped by the latency gate
at its first step. The figures go to the test's output (`pytest -s`) and to bench/README.md's
canary row."""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING

from local.canary import canary_steps, step_figures
from local.prober import Prober
from local.target import free_port, remove_blue_green

if TYPE_CHECKING:
    from collections.abc import Callable

    from local.target import HttpProbe
    from tests.e2e.conftest import E2EStack

RATE = 40.0
STEPS = (10, 50, 100)
HOLD_S = 6
# The proxy's round robin over its 100 slots is exact (1 request in 10 at 10%); the prober's
# windows are cut at the script's log lines, so a few requests at each edge may belong to the steps
# around it.
TOLERANCE = 0.05
MAX_LATENCY_MS = 400  # the sample app answers in a few ms; `laggy` in 800 ms
AFTER_ABORT_S = 3.0  # how long the prober runs on after a failing canary's `pulumi up`


def version_url(health_url: str) -> str:
    return health_url.replace("/api/v1/health", "/api/v1/version")


def test_canary_moves_traffic_in_gated_steps_and_aborts_a_failing_version(
    make_stack: Callable[..., E2EStack],
    proxy_image: str,
    sample_images: dict[str, str],
    http: HttpProbe,
) -> None:
    e2e = make_stack(
        "canary",
        config={
            "mcp:app": {"strategy": "canary"},
            "mcp:proxy": {
                "image": proxy_image,
                "colourPorts": [free_port(), free_port()],
                "drainSeconds": 1,
            },
            "mcp:canary": {
                "steps": list(STEPS),
                "holdSeconds": HOLD_S,
                "maxErrorPercent": 1,
                "maxLatencyMs": MAX_LATENCY_MS,
            },
        },
    )
    url = version_url(e2e.target.health_url)
    try:
        first = e2e.up()
        assert "nothing to compare with: switching at once" in first.stdout + first.stderr
        assert e2e.served_version(http) == "v1"

        # A good canary: v1 -> v2.
        prober = Prober(url, rate=RATE).start()
        since = prober.started_epoch
        e2e.set_tag("v2")
        good = e2e.up()
        report = prober.stop()
        good_steps = canary_steps(e2e.history_log(), since)
        good_rows = step_figures(report, "v2", good_steps)
        print("good canary:", json.dumps({"summary": report.summary(), "steps": good_rows}))
        output = good.stdout + good.stderr
        assert "canary step 1/3 (10%): 10% of requests" in output, output  # Pulumi shows the steps
        assert [s.percent for s in good_steps] == list(STEPS), good_steps
        assert all(s.outcome == "passed" for s in good_steps), good_steps
        assert report.rate >= 20, report.summary()
        assert not report.failed, f"requests failed: {report.summary()}"
        for step, row in zip(good_steps, good_rows, strict=True):
            assert abs(float(str(row["new_share"])) - step.percent / 100) <= TOLERANCE, good_rows
        assert e2e.served_version(http) == "v2"

        # A canary that fails its gate: v2 -> flaky-500 (every other request answers 500).
        prober = Prober(url, rate=RATE).start()
        since = prober.started_epoch
        e2e.set_tag("flaky-500")
        bad = e2e.up(check=False)
        # Keep probing after the abort: "0 failed after it" needs requests after it to count
        # (`pulumi up` may return within a second of the abort).
        time.sleep(AFTER_ABORT_S)
        bad_log = e2e.history_log()
        bad_steps = canary_steps(bad_log, since)
        report = prober.stop()
        bad_rows = step_figures(report, "flaky-500", bad_steps)
        print("failing canary:", json.dumps({"summary": report.summary(), "steps": bad_rows}))
        output = bad.stdout + bad.stderr
        assert bad.returncode != 0, output
        assert "canary stopped at step 1/3 (10%)" in output, output
        assert "ROLLED BACK" in output or "Traffic restored" in output, output
        assert [(s.percent, s.outcome) for s in bad_steps] == [(10, "FAILED")], bad_steps
        (step,) = bad_steps
        failed = report.failed
        assert failed, "the flaky version failed no request: the test proves nothing"
        assert {s.version for s in failed} == {"flaky-500"}, report.summary()
        # Every failure was sent during the step, and they stay within its share of it.
        in_step = report.between(step.start, step.end + 1.0)
        assert len(failed) == sum(1 for s in in_step if s.status != 200), report.summary()
        assert len(failed) <= 0.10 * len(in_step) + 2, bad_rows
        after = report.between(step.end + 1.0, float("inf"))
        assert after and not [s for s in after if s.status != 200], report.summary()
        assert {s.version for s in after} == {"v2"}, report.summary()
        assert e2e.served_version(http) == "v2"

        # A canary too slow for the latency gate: v2 -> laggy (every answer takes 800 ms).
        prober = Prober(url, rate=RATE).start()
        since = prober.started_epoch
        e2e.set_tag("laggy")
        slow = e2e.up(check=False)
        time.sleep(AFTER_ABORT_S)
        slow_steps = canary_steps(e2e.history_log(), since)
        report = prober.stop()
        print("laggy canary:", json.dumps(step_figures(report, "laggy", slow_steps)))
        output = slow.stdout + slow.stderr
        assert slow.returncode != 0, output
        assert "canary stopped at step 1/3 (10%)" in output, output
        assert f"> --canary-max-latency-ms {MAX_LATENCY_MS}" in output, output
        assert [(s.percent, s.outcome) for s in slow_steps] == [(10, "FAILED")], slow_steps
        (step,) = slow_steps
        lagged = [s for s in report.between(since, step.end) if s.version == "laggy"]
        assert lagged and min(s.seconds for s in lagged) >= 0.7, report.summary()
        assert not report.failed, report.summary()  # slow, not failed: only the gate stops it
        after = report.between(step.end + 1.0, float("inf"))
        assert after and {s.version for s in after} == {"v2"}, report.summary()
        assert e2e.served_version(http) == "v2"
    finally:
        remove_blue_green(e2e.target.project)
