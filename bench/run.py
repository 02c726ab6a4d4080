#!/usr/bin/env python3
"""Deploy / rollback benchmark on the local server (`local/server.sh`), in one run.

    .venv/bin/python bench/run.py [--json bench/results.json] [--reps 3]

For each strategy (recreate, blue-green) it runs, over real SSH, the exact remote step
sequence the Pulumi program runs (backup.sh -> deploy.sh -> release.sh; restore.sh for a
manual rollback) while a prober sends >= 20 requests per second to the app's public port, and
next to it the same work done by raw commands (docker pull, compose up -d, health poll), in
the same run. It prints a table and writes JSON. Not part of the pytest suite.

`pulumi up` / `pulumi preview` are NOT measured: the Pulumi engine cannot run on this machine
(the Go module proxy refuses pulumi-language-python and pulumi-resource-command), so "end to
end" here is the server-side step sequence driven over SSH, without the engine's own
overhead (plan, state, per-resource SSH connections).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests" / "integration"), str(ROOT)]

from conftest import (  # noqa: E402
    BUILD_SH,
    PROXY_BUILD_SH,
    PROXY_REPOSITORY,
    PROXY_TAG,
    SAMPLE_IMAGES,
    SAMPLE_REPOSITORY,
    HttpProbe,
    LocalServer,
    _docker_login_root,
    create_deploy_target,
    destroy_deploy_target,
    free_port,
    parse_env_lines,
    registry_image_labels,
)
from prober import Prober, ProbeReport  # noqa: E402
from test_remote_scripts import one_json_line  # noqa: E402
from test_zero_downtime import BlueGreen, remove_blue_green  # noqa: E402

PULUMI_NOTE = (
    "pulumi up / pulumi preview timings are NOT measured: the Pulumi engine cannot run on this "
    "machine (the Go module proxy refuses github.com/pulumi/pulumi/sdk/python/cmd/"
    "pulumi-language-python and github.com/pulumi/pulumi-command/provider, so neither the "
    "Python language host nor the command plugin can be built). 'End to end' here means the "
    "exact remote step sequence the program runs (backup.sh -> deploy.sh -> release.sh, or "
    "restore.sh) over real SSH, timed from the client, without the engine's own overhead."
)
TARGETS = {"zero_failed_blue_green": 0, "deploy_ratio_max": 1.5, "rollback_max_s": 15.0}
ATTEMPTS, TIMEOUT = 10, 10  # health check: 1 s between tries (the scripts' pace)
RAW_POLL_S = 0.5


def sh(*args: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), capture_output=True, text=True, check=False, **kwargs)


def local_server() -> LocalServer:
    up = sh("bash", str(ROOT / "local" / "server.sh"), "up", stdin=subprocess.DEVNULL)
    if up.returncode != 0:
        sys.exit(f"local/server.sh up failed:\n{up.stdout}\n{up.stderr}")
    env = parse_env_lines(sh("bash", str(ROOT / "local" / "server.sh"), "env").stdout)
    return LocalServer.from_env(env)


def ensure_images(server: LocalServer) -> tuple[dict[str, str], str]:
    """Sample app images and the proxy image in the local registry (built if outdated)."""
    _docker_login_root(server)
    source_hash = sh("bash", str(BUILD_SH), "--source-hash").stdout.strip()
    refs = {}
    for name, (version, mode) in SAMPLE_IMAGES.items():
        ref = f"{server.registry}/{SAMPLE_REPOSITORY}:{name}"
        labels = registry_image_labels(server, SAMPLE_REPOSITORY, name) or {}
        if labels.get("mcp.sample.source-sha256") != source_hash:
            proc = sh("bash", str(BUILD_SH), version, mode, ref, "--push")
            if proc.returncode != 0:
                sys.exit(f"building {ref} failed:\n{proc.stderr}")
        refs[name] = ref
    proxy = f"{server.registry}/{PROXY_REPOSITORY}:{PROXY_TAG}"
    proxy_hash = sh("bash", str(PROXY_BUILD_SH), "--source-hash").stdout.strip()
    labels = registry_image_labels(server, PROXY_REPOSITORY, PROXY_TAG) or {}
    if labels.get("mcp.proxy.source-sha256") != proxy_hash:
        proc = sh("bash", str(PROXY_BUILD_SH), proxy, "--push")
        if proc.returncode != 0:
            sys.exit(f"building {proxy} failed:\n{proc.stderr}")
    return refs, proxy


@dataclass
class Row:
    strategy: str
    step: str
    seconds: float
    exit_code: int
    probe: dict[str, Any]
    detail: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "strategy": self.strategy,
            "step": self.step,
            "seconds": round(self.seconds, 2),
            "exit_code": self.exit_code,
            "prober": self.probe,
            "detail": self.detail,
        }


def measured(remote: BlueGreen, action) -> tuple[float, int, ProbeReport, str]:
    # A blue-green release returns once traffic moved; its old colour stops in a background
    # job holding the deploy lock. Wait for it (not measured) so steps do not overlap.
    remote.wait_lock_free(120)
    prober = Prober(remote.target.health_url, rate=40, slow_s=1.0).start()
    time.sleep(0.5)  # the prober is up to speed before the step starts
    started = time.monotonic()
    code, detail = action()
    seconds = time.monotonic() - started
    time.sleep(0.5)
    return seconds, code, prober.stop(), detail


def raw_deploy(remote: BlueGreen, image: str) -> tuple[int, str]:
    """The same work without the scripts: pull, compose up -d, poll the health URL."""
    t = remote.target
    poll = (
        f"n=0; until curl -fsS --max-time 5 {shlex.quote(t.health_url)} >/dev/null 2>&1; do "
        f"n=$((n+1)); [ $n -ge {int(TIMEOUT / RAW_POLL_S)} ] && exit 13; sleep {RAW_POLL_S}; done"
    )
    command = (
        f"docker pull -q {shlex.quote(image)} >/dev/null && "
        f"{t.compose_command('up -d --remove-orphans', image=image)} 2>/dev/null && {poll}"
    )
    proc = remote.run(f"bash -c {shlex.quote(command)}")
    return proc.returncode, proc.stderr[-300:] if proc.returncode else ""


def pipeline(remote: BlueGreen, name: str) -> tuple[int, str]:
    proc = remote.pipeline(name)
    last = proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else ""
    return proc.returncode, last[:300]


def restore(remote: BlueGreen, backup_id: str) -> tuple[int, str]:
    proc = remote.restore(backup_id)
    last = proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else ""
    if proc.returncode == 0:
        last = json.dumps(one_json_line(proc))
    return proc.returncode, last[:300]


def bench_strategy(
    server: LocalServer, images: dict[str, str], proxy: str, strategy: str, reps: int
) -> list[Row]:
    target = create_deploy_target(server, f"bench-{strategy}")
    remote = BlueGreen(
        server,
        target,
        images,
        HttpProbe(),
        attempts=ATTEMPTS,
        timeout=TIMEOUT,
        proxy_image=proxy,
        colour_ports=(free_port(), free_port()),
        strategy=strategy,
    )
    rows: list[Row] = []

    def add(step: str, result: tuple[float, int, ProbeReport, str]) -> None:
        seconds, code, report, detail = result
        rows.append(Row(strategy, step, seconds, code, report.summary(), detail))
        print(
            f"  {strategy:10} {step:34} {seconds:6.2f}s exit {code:2} "
            f"failed {len(report.failed):3} slow {len(report.slow):3} "
            f"({report.sent} requests, {report.rate:.0f}/s)",
            flush=True,
        )

    try:
        remote.install_scripts()
        code, detail = pipeline(remote, "v1")
        if code != 0:
            sys.exit(f"{strategy}: the initial deploy of v1 failed: {detail}")
        current = "v1"

        def other(version: str) -> str:
            return "v2" if version == "v1" else "v1"

        for _ in range(reps):
            if strategy == "recreate":
                # The raw baseline runs on the recreate target (same project, same compose
                # file); blue-green's proxy holds the public port, so raw commands cannot
                # run there. Both strategies are compared with this one baseline.
                current = other(current)
                add(
                    f"deploy raw commands -> {current}",
                    measured(remote, lambda n=current: raw_deploy(remote, images[n])),
                )
            current = other(current)
            add(
                f"deploy scripts -> {current}",
                measured(remote, lambda n=current: pipeline(remote, n)),
            )
        remote.wait_lock_free(120)
        current = remote.version()
        before_broken = current
        add(
            "auto rollback (broken-500)",
            measured(remote, lambda: pipeline(remote, "broken-500")),
        )
        if remote.version() != before_broken:
            rows[-1].detail += f" | after: {remote.version()} (expected {before_broken})"
        # Manual rollback: restore the backup taken before the last good deploy (it recorded
        # the version that served before it).
        good_backups = [
            b
            for b in remote.backups[:-1]
            if remote.manifest(b)["image"] not in ("", images[current])
        ]
        add(
            f"manual rollback (restore {good_backups[-1]})",
            measured(remote, lambda: restore(remote, good_backups[-1])),
        )
    finally:
        remove_blue_green(target)
        destroy_deploy_target(server, target)
    return rows


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def summarise(rows: list[Row]) -> dict[str, Any]:
    raw = median([r.seconds for r in rows if "raw commands" in r.step and r.exit_code == 0])
    out: dict[str, Any] = {"raw_deploy_median_s": round(raw, 2), "strategies": {}}
    for strategy in ("recreate", "blue-green"):
        mine = [r for r in rows if r.strategy == strategy]
        deploys = [
            r.seconds for r in mine if r.step.startswith("deploy scripts") and r.exit_code == 0
        ]
        auto = [r for r in mine if r.step.startswith("auto rollback")]
        manual = [r for r in mine if r.step.startswith("manual rollback")]
        scripted = [r for r in mine if "raw commands" not in r.step]
        failed = sum(r.probe["failed"] for r in scripted)
        slow = sum(r.probe["slow"] for r in scripted)
        ratio = median(deploys) / raw if raw else float("nan")
        out["strategies"][strategy] = {
            "deploy_median_s": round(median(deploys), 2),
            "deploy_ratio_vs_raw": round(ratio, 2),
            "auto_rollback_s": round(auto[0].seconds, 2) if auto else None,
            "auto_rollback_exit": auto[0].exit_code if auto else None,
            "manual_rollback_s": round(manual[0].seconds, 2) if manual else None,
            "manual_rollback_exit": manual[0].exit_code if manual else None,
            "failed_requests_scripted_steps": failed,
            "slow_requests_scripted_steps": slow,
            "targets": {
                "zero_failed_requests": failed == 0,
                "deploy_within_1.5x_raw": ratio <= TARGETS["deploy_ratio_max"],
                "rollbacks_under_15s": bool(auto and manual)
                and auto[0].seconds < TARGETS["rollback_max_s"]
                and manual[0].seconds < TARGETS["rollback_max_s"],
            },
        }
    return out


def print_table(rows: list[Row], summary: dict[str, Any]) -> None:
    header = (
        f"{'strategy':10} {'step':38} {'seconds':>7} {'exit':>4} {'reqs':>5} {'req/s':>5} "
        f"{'failed':>6} {'slow>1s':>7} {'max lat':>7}"
    )
    print("\n" + header)
    print("-" * len(header))
    for r in rows:
        p = r.probe
        print(
            f"{r.strategy:10} {r.step:38} {r.seconds:7.2f} {r.exit_code:4} {p['requests']:5} "
            f"{p['rate_per_s']:5.0f} {p['failed']:6} {p['slow']:7} {p['max_latency_s']:6.2f}s"
        )
    print(f"\nraw commands deploy (median): {summary['raw_deploy_median_s']} s")
    print(
        f"{'strategy':10} {'deploy (median)':>15} {'ratio vs raw':>12} {'auto rollback':>13} "
        f"{'manual rollback':>15} {'failed':>6} {'slow':>5}"
    )
    for name, s in summary["strategies"].items():
        print(
            f"{name:10} {s['deploy_median_s']:14.2f}s {s['deploy_ratio_vs_raw']:11.2f}x "
            f"{s['auto_rollback_s']:12.2f}s {s['manual_rollback_s']:14.2f}s "
            f"{s['failed_requests_scripted_steps']:6} {s['slow_requests_scripted_steps']:5}"
        )
        print(f"{'':10} targets: {s['targets']}")
    print(f"\nNOTE: {PULUMI_NOTE}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", type=Path, help="write the results as JSON to this file")
    parser.add_argument("--reps", type=int, default=3, help="deploys per strategy (default 3)")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("run as root (local/server.sh manages daemons and users)")
    server = local_server()
    images, proxy = ensure_images(server)
    print(
        f"local server {server.host}:{server.ssh_port}, health check {ATTEMPTS} tries within "
        f"{TIMEOUT}s, raw poll every {RAW_POLL_S}s, prober 40 req/s (slow = >1 s)",
        flush=True,
    )
    rows: list[Row] = []
    for strategy in ("recreate", "blue-green"):
        rows += bench_strategy(server, images, proxy, strategy, args.reps)
    summary = summarise(rows)
    print_table(rows, summary)
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
                    "settings": {
                        "health_attempts": ATTEMPTS,
                        "health_timeout_s": TIMEOUT,
                        "raw_poll_interval_s": RAW_POLL_S,
                        "prober_rate_per_s": 40,
                        "slow_threshold_s": 1.0,
                        "drain_seconds": 1,
                        "reps": args.reps,
                    },
                    "targets": TARGETS,
                    "pulumi_not_measured": PULUMI_NOTE,
                    "summary": summary,
                    "rows": [r.as_dict() for r in rows],
                },
                indent=2,
            )
            + "\n"
        )
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
