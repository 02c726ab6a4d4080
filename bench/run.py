#!/usr/bin/env python3
"""Deploy / rollback benchmark through the real Pulumi engine, on the local server, in one run.

    .venv/bin/python bench/run.py [--json bench/results.json] [--reps 3]

Everything a user runs is measured as they run it: `pulumi up --yes` of a new tag (until the
command returns, and until the new version answers), a no-op `pulumi up` and `pulumi preview`,
the same CLI's no-op `pulumi up` of a one-resource program (the engine's own floor), an
automatic rollback (`pulumi up` of a broken tag), and `python rollback.py --last-good`. Next to
them, in the same run and on the same target, the raw commands (`docker pull` +
`compose up -d` + polling the health URL, in one `ssh`). With `blue-green`, a prober sends
40 requests/s to the public port through every step and counts failed requests.
It prints a table and ratios, and writes JSON. Not part of the pytest suite.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import secrets
import shlex
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT)]

from local.canary import canary_steps, step_figures  # noqa: E402
from local.prober import Prober  # noqa: E402
from local.stack import (  # noqa: E402
    MachineValues,
    PulumiStack,
    pulumi_environment,
    target_config,
)
from local.target import (  # noqa: E402
    DeployTarget,
    HttpProbe,
    LocalServer,
    create_deploy_target,
    destroy_deploy_target,
    ensure_proxy_image,
    ensure_sample_images,
    free_port,
    remove_blue_green,
    start_local_server,
)

HEALTH_ATTEMPTS, HEALTH_TIMEOUT = 10, 10
# The raw commands poll the health URL this often: 0.1 s, so their side waits at most 0.1 s
# past the first healthy answer (issue 21; 0.5 s added up to 0.5 s to the raw side).
RAW_POLL_S = 0.1
PROBER_RATE = 40
CANARY_STEPS, CANARY_HOLD_S = [10, 50, 100], 10
# How `pulumi up` is run: as the deploy workflow runs it, and as an engineer types it.
UP_VARIANTS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("pulumi up --skip-preview", ("--skip-preview",)),
    ("pulumi up", ()),
)
BASELINE_PROGRAM = '''"""One resource: the engine's own no-op floor, to compare with."""
import pulumi_command

pulumi_command.local.Command("one", create="true")
'''


def sh(*args: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), capture_output=True, text=True, check=False, **kwargs)


def ensure_images(server: LocalServer) -> tuple[dict[str, str], str]:
    """The sample images and the proxy image, pushed when missing or outdated."""
    names = ["v1", "v2", "broken-500", "flaky-500"]
    return ensure_sample_images(server, names), ensure_proxy_image(server)


@dataclass
class Row:
    """One measured step. Times are seconds since the step's command started."""

    strategy: str
    step: str
    seconds: float  # the command, start to exit
    exit_code: int
    serving_after_s: float | None = None  # the version expected answers
    first_remote_s: float | None = None  # the scripts' first log line on the server
    failure_detected_s: float | None = None  # the release's "FAILED:" line
    healthy_again_s: float | None = None  # the previous version answers after the failure
    probe: dict[str, Any] = field(default_factory=dict)
    server_log: list[tuple[float, str]] = field(default_factory=list)  # (t, audit log line)

    @property
    def remote_s(self) -> float | None:
        """First remote step start -> the new version answers."""
        if self.serving_after_s is None or self.first_remote_s is None:
            return None
        return self.serving_after_s - self.first_remote_s

    def as_dict(self) -> dict[str, Any]:
        def r(value: float | None) -> float | None:
            return None if value is None else round(value, 2)

        return {
            "strategy": self.strategy,
            "step": self.step,
            "seconds": r(self.seconds),
            "exit_code": self.exit_code,
            "serving_after_s": r(self.serving_after_s),
            "first_remote_s": r(self.first_remote_s),
            "remote_s": r(self.remote_s),
            "failure_detected_s": r(self.failure_detected_s),
            "healthy_again_s": r(self.healthy_again_s),
            "prober": self.probe,
            # When each line of the scripts' audit log appeared (the remote part's breakdown).
            "server_log": [(round(t, 2), line[25:140]) for t, line in self.server_log],
        }


class StepWatch:
    """While a step runs: which version answers the health URL (polled every 50 ms), and each
    new line of the scripts' audit log on the server (`<deployDir>/.deploy/history.log`, read
    every 10 ms: the local server's files are this machine's), with times since the start."""

    def __init__(self, url: str, history_log: Path) -> None:
        self.url, self.history_log = url, history_log
        self.started = time.monotonic()
        self.answers: list[tuple[float, str]] = []  # (t, version) at each change of answer
        self.lines: list[tuple[float, str]] = []
        self._offset = history_log.stat().st_size if history_log.exists() else 0
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._poll_http, daemon=True),
            threading.Thread(target=self._tail_log, daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def _now(self) -> float:
        return time.monotonic() - self.started

    def _poll_http(self) -> None:
        http = HttpProbe()
        last = None
        while not self._stop.is_set():
            status, body = http.get(self.url, timeout=1)
            try:
                version = str(json.loads(body).get("version")) if status == 200 else ""
            except ValueError:
                version = ""
            if version != last:
                self.answers.append((self._now(), version))
                last = version
            time.sleep(0.05)

    def _tail_log(self) -> None:
        pending = ""
        while not self._stop.is_set():
            if self.history_log.exists():
                with self.history_log.open() as log:
                    log.seek(self._offset)
                    chunk = log.read()
                    self._offset = log.tell()
                pending += chunk
                *complete, pending = pending.split("\n")
                now = self._now()
                self.lines += [(now, line) for line in complete if line]
            time.sleep(0.01)

    def stop(self) -> StepWatch:
        self._stop.set()
        for thread in self._threads:
            thread.join()
        return self

    def first_answer(self, version: str, after: float = 0.0) -> float | None:
        """When `version` first answered (at or after `after`)."""
        return next((t for t, v in self.answers if v == version and t >= after), None)

    def first_line(self, needle: str) -> float | None:
        return next((t for t, line in self.lines if needle in line), None)


@dataclass
class Bench:
    server: LocalServer
    env: dict[str, str]
    images: dict[str, str]
    proxy: str
    rows: list[Row] = field(default_factory=list)

    def add(self, row: Row) -> None:
        self.rows.append(row)
        notes = []
        if row.serving_after_s is not None:
            notes.append(f"serving after {row.serving_after_s:.2f}s")
        if row.remote_s is not None:
            notes.append(f"remote part {row.remote_s:.2f}s")
        if row.healthy_again_s is not None and row.failure_detected_s is not None:
            notes.append(
                f"failure at {row.failure_detected_s:.2f}s, previous version healthy again "
                f"{row.healthy_again_s - row.failure_detected_s:.2f}s later"
            )
        if row.probe:
            notes.append(f"failed {row.probe['failed']}/{row.probe['requests']} requests")
        print(
            f"  {row.strategy:10} {row.step:38} {row.seconds:6.2f}s exit {row.exit_code}  "
            + "; ".join(notes),
            flush=True,
        )

    def stack_for(self, strategy: str) -> tuple[PulumiStack, Any]:
        target = create_deploy_target(self.server, f"bench-{strategy}")
        extra: dict[str, Any] = {}
        if strategy in ("blue-green", "canary"):
            extra = {
                "mcp:app": {"strategy": strategy},
                "mcp:proxy": {
                    "image": self.proxy,
                    "colourPorts": [free_port(), free_port()],
                    "drainSeconds": 1,
                },
            }
        if strategy == "canary":
            extra["mcp:canary"] = {"steps": CANARY_STEPS, "holdSeconds": CANARY_HOLD_S}
        stack = PulumiStack(f"bench-{strategy}-{secrets.token_hex(3)}", env=dict(self.env))
        stack.create(
            target_config(
                ssh=(self.server.host, self.server.ssh_port, self.server.user),
                registry=self.server.registry,
                deploy_dir=str(target.deploy_dir),
                backup_dir=str(target.backup_dir),
                http_port=target.http_port,
                project=target.project,
                health=(HEALTH_ATTEMPTS, HEALTH_TIMEOUT),
                extra=extra,
            )
        )
        stack.set_machine_values(
            MachineValues(
                host_key=self.server.host_public_key,
                ssh_private_key=self.server.private_key_path.read_text(),
                registry_user=self.server.registry_user,
                registry_password=self.server.registry_password,
            ),
            image_tag="v1",
        )
        return stack, target

    def timed(
        self,
        strategy: str,
        step: str,
        action: Callable[[], int],
        target: DeployTarget,
        *,
        expect_version: str | None = None,
        previous_version: str | None = None,
    ) -> Row:
        """Runs `action` while watching the app and the server's audit log."""
        watch = StepWatch(target.health_url, target.deploy_dir / ".deploy" / "history.log")
        started = time.monotonic()
        code = action()
        seconds = time.monotonic() - started
        watch.stop()
        failure = watch.first_line("FAILED:")
        row = Row(
            strategy,
            step,
            seconds,
            code,
            serving_after_s=watch.first_answer(expect_version) if expect_version else None,
            first_remote_s=watch.lines[0][0] if watch.lines else None,
            failure_detected_s=failure,
            healthy_again_s=watch.first_answer(previous_version, after=failure)
            if previous_version and failure is not None
            else None,
            server_log=watch.lines,
        )
        self.add(row)
        return row

    def raw_deploy(self, target: Any, version: str) -> int:
        """pull + compose up -d + poll health, in one ssh (what an engineer would type)."""
        image = self.images[version]
        poll = (
            f"n=0; until curl -fsS --max-time 5 {shlex.quote(target.health_url)} 2>/dev/null"
            f' | grep -q \'"version":"{version}"\'; do n=$((n+1)); '
            f"[ $n -ge {round(HEALTH_TIMEOUT / RAW_POLL_S)} ] && exit 13; sleep {RAW_POLL_S}; done"
        )
        command = (
            f"docker pull -q {shlex.quote(image)} >/dev/null && "
            f"{target.compose_command('up -d --remove-orphans', image=image)} 2>/dev/null && {poll}"
        )
        return self.server.ssh(f"bash -c {shlex.quote(command)}").returncode

    def rollback_last_good(self, stack: PulumiStack) -> int:
        return sh(
            sys.executable,
            str(ROOT / "rollback.py"),
            "--stack",
            stack.name,
            "--last-good",
            "--yes",
            cwd=ROOT,
            env=stack.env,
            stdin=subprocess.DEVNULL,
        ).returncode

    def recreate(self, reps: int) -> None:
        stack, target = self.stack_for("recreate")
        try:
            stack.up()
            deployed = "v1"  # what Pulumi last deployed, and what serves between reps
            for _ in range(reps):
                # What the deploy workflow runs (`--skip-preview`: nobody reads a preview in
                # CI), then what an engineer types (`pulumi up --yes`: preview, then update).
                for label, extra in UP_VARIANTS:
                    other = "v2" if deployed == "v1" else "v1"
                    stack.set_config("mcp:imageTag", other)
                    self.timed(
                        "recreate",
                        f"{label} -> {other}",
                        lambda extra=extra: stack.up(*extra, check=False).returncode,
                        target,
                        expect_version=other,
                    )
                    deployed = other
                # The raw commands switch away and back, so Pulumi's view stays true.
                for version in ("v2" if deployed == "v1" else "v1", deployed):
                    self.timed(
                        "recreate",
                        f"raw commands -> {version}",
                        lambda v=version: self.raw_deploy(target, v),
                        target,
                        expect_version=version,
                    )
            # Each no-op right after the floor's no-op of the same kind (pairs: this machine's
            # speed drifts within seconds; issue 21).
            with self.baseline() as floor:
                for _ in range(reps):
                    for label, extra in UP_VARIANTS:
                        self.add(
                            _timed_plain(
                                "baseline",
                                f"one-resource {label} (no-op)",
                                lambda extra=extra, **kw: floor.up(*extra, **kw),
                            )
                        )
                        self.timed(
                            "recreate",
                            f"{label} (no-op)",
                            lambda extra=extra: stack.up(*extra, check=False).returncode,
                            target,
                        )
            for _ in range(reps):
                self.timed(
                    "recreate",
                    "pulumi preview (no-op)",
                    lambda: stack.preview(check=False).returncode,
                    target,
                )
            self.timed(
                "recreate",
                "pulumi up broken-500 (auto rollback)",
                self._up_tag(stack, "broken-500"),
                target,
                previous_version=deployed,
            )
            previous = "v2" if deployed == "v1" else "v1"
            self.timed(
                "recreate",
                f"rollback.py --last-good -> {previous}",
                lambda: self.rollback_last_good(stack),
                target,
                expect_version=previous,
            )
        finally:
            stack.remove()
            destroy_deploy_target(self.server, target)

    def blue_green(self) -> None:
        stack, target = self.stack_for("blue-green")
        try:
            stack.up()
            steps: list[tuple[str, Callable[[], int], str | None, str | None]] = [
                ("pulumi up -> v2", self._up_tag(stack, "v2"), "v2", None),
                ("pulumi up -> v1", self._up_tag(stack, "v1"), "v1", None),
                (
                    "pulumi up broken-500 (auto rollback)",
                    self._up_tag(stack, "broken-500"),
                    None,
                    "v1",
                ),
                (
                    "rollback.py --last-good -> v2",
                    lambda: self.rollback_last_good(stack),
                    "v2",
                    None,
                ),
            ]
            for step, action, version, previous in steps:
                _wait_lock_free(target.deploy_dir)  # the old colour stops in the background
                prober = Prober(target.health_url, rate=PROBER_RATE, slow_s=1.0).start()
                time.sleep(0.5)
                row = self.timed(
                    "blue-green",
                    step,
                    action,
                    target,
                    expect_version=version,
                    previous_version=previous,
                )
                time.sleep(0.5)
                row.probe = prober.stop().summary()
                print(
                    f"  {'':10} prober: {row.probe['failed']} failed of {row.probe['requests']}",
                    flush=True,
                )
        finally:
            stack.remove()
            remove_blue_green(target.project)
            destroy_deploy_target(self.server, target)

    def canary(self) -> None:
        """A good canary (v1 -> v2) and one its gate stops (v2 -> flaky-500, half of its
        requests answer 500), a prober at PROBER_RATE on /api/v1/version: the new version's
        share at each step, and the failed requests during and after."""
        stack, target = self.stack_for("canary")
        history = target.deploy_dir / ".deploy" / "history.log"
        url = target.health_url.replace("/api/v1/health", "/api/v1/version")
        try:
            stack.up()
            for step, tag, previous in (
                ("pulumi up -> v2 (good canary)", "v2", None),
                ("pulumi up flaky-500 (gate stops it)", "flaky-500", "v2"),
            ):
                _wait_lock_free(target.deploy_dir)
                prober = Prober(url, rate=PROBER_RATE, slow_s=1.0).start()
                time.sleep(0.5)
                row = self.timed(
                    "canary",
                    step,
                    self._up_tag(stack, tag),
                    target,
                    expect_version=None if previous else tag,
                    previous_version=previous,
                )
                time.sleep(2.0)
                report = prober.stop()
                steps = canary_steps(history.read_text(), prober.started_epoch)
                row.probe = report.summary()
                row.probe["steps"] = step_figures(report, tag, steps)
                after = report.between(steps[-1].end + 1.0, float("inf")) if steps else []
                row.probe["after_abort"] = {
                    "requests": len(after),
                    "failed": sum(1 for s in after if s.status != 200),
                }
                for figure in row.probe["steps"]:
                    print(f"  {'':10} {figure}", flush=True)
        finally:
            stack.remove()
            remove_blue_green(target.project)
            destroy_deploy_target(self.server, target)

    def _up_tag(self, stack: PulumiStack, tag: str) -> Callable[[], int]:
        def action() -> int:
            stack.set_config("mcp:imageTag", tag)
            return stack.up(check=False).returncode

        return action

    @contextmanager
    def baseline(self) -> Iterator[PulumiStack]:
        """A stack of a one-resource program (`BASELINE_PROGRAM`), deployed once: the same
        CLI's no-op `pulumi up` of it is the engine's own floor."""
        with tempfile.TemporaryDirectory() as work:
            project = Path(work)
            (project / "Pulumi.yaml").write_text(
                "name: bench-baseline\nruntime:\n  name: python\n  options:\n"
                f"    toolchain: pip\n    virtualenv: {ROOT / '.venv'}\n"
            )
            (project / "__main__.py").write_text(BASELINE_PROGRAM)
            stack = PulumiStack(f"baseline-{secrets.token_hex(3)}", env=dict(self.env), cwd=project)
            stack.ensure_in_backend()
            stack.up()
            try:
                yield stack
            finally:
                stack.remove()


def _timed_plain(
    strategy: str, step: str, up: Callable[..., subprocess.CompletedProcess[str]]
) -> Row:
    started = time.monotonic()
    code = up(check=False).returncode
    return Row(strategy, step, time.monotonic() - started, code)


def _wait_lock_free(deploy_dir: Path, timeout: float = 120) -> None:
    """Waits until no script holds the deploy lock (flock on <deployDir>/.deploy/lock)."""
    lock = deploy_dir / ".deploy" / "lock"
    if not lock.exists():
        return
    subprocess.run(
        ["flock", "-w", str(timeout), str(lock), "true"], check=False, capture_output=True
    )


def median(rows: list[Row], prefix: str, strategy: str, attr: str = "seconds") -> float | None:
    values = [
        getattr(r, attr)
        for r in rows
        if r.strategy == strategy
        and r.step.startswith(prefix)
        and r.exit_code == 0
        and getattr(r, attr) is not None
    ]
    return statistics.median(values) if values else None


# Issue 13's table: measure -> (today, as measured before this work; target). "Today" is the
# issue's own figure (the same measure on the program before the one-plan and speed work).
TARGETS: dict[str, tuple[str, str]] = {
    "pulumi up of a new tag / raw commands": ("3.2x", "<= 2.0x"),
    "remote part (first remote step -> new version healthy) / raw commands": (
        "not measured",
        "<= 1.2x",
    ),
    "no-op pulumi up / one-resource program's no-op up": ("1.33x", "<= 1.1x"),
    "automatic rollback: failure detected -> previous version healthy": (
        "~5 s past the deadline",
        "<= 2 s past the deadline",
    ),
    "blue-green: failed requests during deploys and rollbacks": ("0", "0"),
    "canary: v2's share of requests at steps 10/50/100%": ("no canary", "each within 5 points"),
    "canary: failed requests: good canary / failing canary (share of its step) / after abort": (
        "no canary",
        "0 / <= 10% / 0",
    ),
}


def _line_gap(row: Row, first: str, then: str) -> float | None:
    """Seconds from the first audit-log line holding `first` to the first holding `then`."""
    start = next((t for t, line in row.server_log if first in line), None)
    end = next((t for t, line in row.server_log if then in line), None)
    return end - start if start is not None and end is not None else None


def new_tag_breakdown(rows: list[Row]) -> dict[str, float | None]:
    """Where a new tag's `pulumi up --skip-preview` spends its time, medians over the runs,
    from the scripts' audit-log lines as they appeared (seconds)."""
    ups = [
        r
        for r in rows
        if r.strategy == "recreate"
        and r.step.startswith("pulumi up --skip-preview -> ")
        and r.exit_code == 0
    ]
    parts: dict[str, list[float]] = {}

    def add(name: str, value: float | None) -> None:
        if value is not None:
            parts.setdefault(name, []).append(value)

    for r in ups:
        add("engine_until_first_remote_step_s", r.first_remote_s)
        add("deploy_sh_s", _line_gap(r, "[deploy] started", "[deploy] done:"))
        # The second SSH session: deploy.sh's last line -> release.sh's first.
        add("deploy_done_to_release_start_s", _line_gap(r, "[deploy] done:", "[release] started"))
        add("release_start_to_compose_up_s", _line_gap(r, "[release] started", "set MCP_IMAGE="))
        add("compose_up_s", _line_gap(r, "set MCP_IMAGE=", "[release] checking"))
        add("first_health_answer_s", _line_gap(r, "[release] checking", "[release] healthy"))
        done = next((t for t, line in r.server_log if "[release] done:" in line), None)
        add("release_done_to_exit_s", r.seconds - done if done is not None else None)
    return {name: round(statistics.median(values), 2) for name, values in parts.items()}


def paired_ratios(rows: list[Row]) -> dict[str, float | None]:
    """Ratios pair by pair, in the order the steps ran, medians: each new tag's `pulumi up
    --skip-preview` over the mean of the raw commands run right after it (same rep), and each
    no-op `pulumi up` over the one-resource floor's no-op of the same kind run right before it.
    Steadier than a ratio of medians when the machine's speed drifts during the run."""
    new_tag: list[float] = []
    noop: dict[str, list[float]] = {label: [] for label, _ in UP_VARIANTS}
    up: float | None = None
    raws: list[float] = []
    floor: dict[str, float] = {}
    for r in rows:
        if r.exit_code != 0:
            continue
        if r.strategy == "recreate" and r.step.startswith("pulumi up --skip-preview -> "):
            up, raws = r.seconds, []
        elif r.strategy == "recreate" and r.step.startswith("raw commands") and up is not None:
            raws.append(r.seconds)
            if len(raws) == 2:
                new_tag.append(up / statistics.mean(raws))
                up = None
        for label, _ in UP_VARIANTS:
            if r.strategy == "baseline" and r.step == f"one-resource {label} (no-op)":
                floor[label] = r.seconds
            elif r.strategy == "recreate" and r.step == f"{label} (no-op)" and label in floor:
                noop[label].append(r.seconds / floor.pop(label))

    def med(values: list[float]) -> float | None:
        return round(statistics.median(values), 2) if values else None

    return {
        "new_tag_skip_preview_over_raw": med(new_tag),
        "noop_up_over_floor": med(noop["pulumi up"]),
        "noop_up_skip_preview_over_floor": med(noop["pulumi up --skip-preview"]),
    }


def summarise(rows: list[Row]) -> dict[str, Any]:
    raw = median(rows, "raw commands", "recreate")
    up = median(rows, "pulumi up --skip-preview -> ", "recreate")
    up_preview = median(rows, "pulumi up -> ", "recreate")
    up_serving = median(rows, "pulumi up --skip-preview -> ", "recreate", "serving_after_s")
    remote = median(rows, "pulumi up", "recreate", "remote_s")
    noop = median(rows, "pulumi up (no-op)", "recreate")
    noop_skip = median(rows, "pulumi up --skip-preview (no-op)", "recreate")
    preview = median(rows, "pulumi preview (no-op)", "recreate")
    floor = median(rows, "one-resource pulumi up (no-op)", "baseline")
    floor_skip = median(rows, "one-resource pulumi up --skip-preview (no-op)", "baseline")
    auto = next((r for r in rows if r.strategy == "recreate" and "auto rollback" in r.step), None)
    back = next(
        (r for r in rows if r.strategy == "recreate" and r.step.startswith("rollback.py")), None
    )
    bg = [r for r in rows if r.strategy == "blue-green"]
    good = next((r for r in rows if r.strategy == "canary" and "good" in r.step), None)
    bad = next((r for r in rows if r.strategy == "canary" and "flaky" in r.step), None)

    def ratio(a: float | None, b: float | None) -> float | None:
        return round(a / b, 2) if a and b else None

    def rounded(value: float | None) -> float | None:
        return None if value is None else round(value, 2)

    rollback_gap = None
    past_deadline = None
    if auto and auto.failure_detected_s is not None and auto.healthy_again_s is not None:
        rollback_gap = auto.healthy_again_s - auto.failure_detected_s
        if auto.first_remote_s is not None:
            past_deadline = auto.healthy_again_s - auto.first_remote_s - HEALTH_TIMEOUT
    failed = sum(r.probe.get("failed", 0) for r in bg)
    figures = {
        "raw_commands_s": rounded(raw),
        "pulumi_up_skip_preview_new_tag_s": rounded(up),
        "pulumi_up_skip_preview_new_tag_serving_after_s": rounded(up_serving),
        "pulumi_up_with_preview_new_tag_s": rounded(up_preview),
        "remote_part_s": rounded(remote),
        "noop_up_s": rounded(noop),
        "noop_up_skip_preview_s": rounded(noop_skip),
        "noop_preview_s": rounded(preview),
        "one_resource_noop_up_s": rounded(floor),
        "one_resource_noop_up_skip_preview_s": rounded(floor_skip),
        "auto_rollback_up_s": auto and rounded(auto.seconds),
        "auto_rollback_exit": auto and auto.exit_code,
        "auto_rollback_failure_to_healthy_s": rounded(rollback_gap),
        "auto_rollback_remote_past_deadline_s": rounded(past_deadline),
        "rollback_py_s": back and rounded(back.seconds),
        "rollback_py_serving_after_s": back and rounded(back.serving_after_s),
        "blue_green_failed_requests": failed,
        "blue_green_requests": sum(r.probe.get("requests", 0) for r in bg),
        "canary_good_steps": good and good.probe.get("steps"),
        "canary_good_failed_requests": good and good.probe.get("failed"),
        "canary_failing_steps": bad and bad.probe.get("steps"),
        "canary_failing_after_abort": bad and bad.probe.get("after_abort"),
        "canary_failing_exit": bad and bad.exit_code,
    }
    good_steps = good.probe.get("steps", []) if good else []
    shares = "/".join(f"{float(str(f['new_share'])) * 100:.1f}%" for f in good_steps)
    bad_step = (bad.probe.get("steps") or [{}])[0] if bad else {}
    bad_share = (
        f"{bad_step.get('failed')} of {bad_step.get('requests')} in step {bad_step.get('step')}"
        if bad_step
        else "n/a"
    )
    new = {
        "pulumi up of a new tag / raw commands": (
            f"{ratio(up, raw)}x (--skip-preview, as the workflow); "
            f"{ratio(up_preview, raw)}x with preview"
        ),
        "remote part (first remote step -> new version healthy) / raw commands": (
            f"{ratio(remote, raw)}x"
        ),
        "no-op pulumi up / one-resource program's no-op up": (
            f"{ratio(noop, floor)}x; {ratio(noop_skip, floor_skip)}x --skip-preview"
        ),
        "automatic rollback: failure detected -> previous version healthy": (
            f"{rounded(rollback_gap)} s after detection; "
            f"{rounded(past_deadline)} s past the deadline"
        ),
        "blue-green: failed requests during deploys and rollbacks": str(failed),
        "canary: v2's share of requests at steps 10/50/100%": shares or "n/a",
        "canary: failed requests: good canary / failing canary (share of its step) / after abort": (
            f"{good and good.probe.get('failed')} / {bad_share} / "
            f"{bad and bad.probe.get('after_abort', {}).get('failed')}"
        ),
    }
    table = [
        {"measure": measure, "today": today, "new": new[measure], "target": target}
        for measure, (today, target) in TARGETS.items()
    ]
    return {
        "figures": figures,
        "table": table,
        "paired_ratios": paired_ratios(rows),
        "new_tag_breakdown": new_tag_breakdown(rows),
    }


def print_summary(summary: dict[str, Any]) -> None:
    print("\nfigures (medians, seconds)")
    for key, value in summary["figures"].items():
        print(f"  {key:44} {value}")
    print("\nratios pair by pair (medians)")
    for key, value in summary["paired_ratios"].items():
        print(f"  {key:44} {value}")
    print("\na new tag's pulumi up --skip-preview, part by part (medians, seconds)")
    for key, value in summary["new_tag_breakdown"].items():
        print(f"  {key:44} {value}")
    print(f"\n| {'measure':70} | {'today':22} | {'new':44} | target |")
    for row in summary["table"]:
        print(f"| {row['measure']:70} | {row['today']:22} | {row['new']:44} | {row['target']} |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", type=Path, help="write the results as JSON to this file")
    parser.add_argument(
        "--reps", type=int, default=3, help="repetitions of each deploy (default 3)"
    )
    parser.add_argument(
        "--only",
        choices=("canary", "recreate"),
        help="run only this part: canary (its row alone) or recreate (new tags, raw commands, "
        "no-ops next to the one-resource floor's, the automatic rollback and rollback.py)",
    )
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("run as root (local/server.sh manages daemons and users)")
    server = start_local_server()
    images, proxy = ensure_images(server)
    env = pulumi_environment()
    backend = Path(tempfile.mkdtemp(prefix="bench-backend-"))
    env["PULUMI_BACKEND_URL"] = f"file://{backend}"
    env["PULUMI_CONFIG_PASSPHRASE"] = secrets.token_hex(16)
    version = sh("pulumi", "version", env=env).stdout.strip()
    # The language host runs `python -m pip --version` and `pip list` before every program run:
    # the venv's pip counts (CI pins PIP_VERSION; tools/test.sh installs it into .venv too).
    venv_pip = sh(str(ROOT / ".venv" / "bin" / "python"), "-m", "pip", "--version").stdout.split()
    pip_version = venv_pip[1] if len(venv_pip) > 1 else "unknown"
    print(
        f"pulumi {version}; health check {HEALTH_ATTEMPTS} tries within {HEALTH_TIMEOUT}s; "
        f"raw poll every {RAW_POLL_S}s; prober {PROBER_RATE} req/s; .venv pip {pip_version}",
        flush=True,
    )
    bench = Bench(server, env, images, proxy)
    if args.only != "canary":
        bench.recreate(args.reps)  # the one-resource floor's no-ops among its own
    if args.only is None:
        bench.blue_green()
    if args.only != "recreate":
        bench.canary()
    summary = summarise(bench.rows)
    print_summary(summary)
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                    "machine": {
                        "host": platform.node(),
                        "kernel": platform.release(),
                        "cpus": os.cpu_count(),
                    },
                    "pulumi": version,
                    "venv_pip": pip_version,
                    "settings": {
                        "health_attempts": HEALTH_ATTEMPTS,
                        "health_timeout_s": HEALTH_TIMEOUT,
                        "raw_poll_interval_s": RAW_POLL_S,
                        "prober_rate_per_s": PROBER_RATE,
                        "reps": args.reps,
                    },
                    "summary": summary,
                    "rows": [r.as_dict() for r in bench.rows],
                },
                indent=2,
            )
            + "\n"
        )
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
