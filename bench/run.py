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
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT)]

from local.prober import Prober  # noqa: E402
from local.stack import (  # noqa: E402
    MachineValues,
    PulumiStack,
    pulumi_environment,
    target_config,
)
from local.target import (  # noqa: E402
    HttpProbe,
    LocalServer,
    create_deploy_target,
    destroy_deploy_target,
    ensure_proxy_image,
    ensure_sample_images,
    free_port,
    start_local_server,
)

HEALTH_ATTEMPTS, HEALTH_TIMEOUT = 10, 10
RAW_POLL_S = 0.5
PROBER_RATE = 40
BASELINE_PROGRAM = '''"""One resource: the engine's own no-op floor, to compare with."""
import pulumi_command

pulumi_command.local.Command("one", create="true")
'''


def sh(*args: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), capture_output=True, text=True, check=False, **kwargs)


def ensure_images(server: LocalServer) -> tuple[dict[str, str], str]:
    """The sample images and the proxy image, pushed when missing or outdated."""
    return ensure_sample_images(server, ["v1", "v2", "broken-500"]), ensure_proxy_image(server)


@dataclass
class Row:
    strategy: str
    step: str
    seconds: float
    exit_code: int
    serving_after_s: float | None = None  # start -> the new version answers
    probe: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "strategy": self.strategy,
            "step": self.step,
            "seconds": round(self.seconds, 2),
            "exit_code": self.exit_code,
            "serving_after_s": None
            if self.serving_after_s is None
            else round(self.serving_after_s, 2),
            "prober": self.probe,
        }


class VersionWatch:
    """Polls the health URL every 50 ms and notes when `version` first answers."""

    def __init__(self, url: str, version: str) -> None:
        self.url, self.version = url, version
        self.started = time.monotonic()
        self.seen_at: float | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        http = HttpProbe()
        while not self._stop.is_set() and self.seen_at is None:
            status, body = http.get(self.url, timeout=1)
            try:
                version = json.loads(body).get("version") if status == 200 else None
            except ValueError:
                version = None
            if version == self.version:
                self.seen_at = time.monotonic() - self.started
            time.sleep(0.05)

    def stop(self) -> float | None:
        self._stop.set()
        self._thread.join()
        return self.seen_at


@dataclass
class Bench:
    server: LocalServer
    env: dict[str, str]
    images: dict[str, str]
    proxy: str
    rows: list[Row] = field(default_factory=list)

    def add(self, row: Row) -> None:
        self.rows.append(row)
        serving = (
            "" if row.serving_after_s is None else f" serving after {row.serving_after_s:5.2f}s"
        )
        probe = ""
        if row.probe:
            probe = f" failed {row.probe['failed']}/{row.probe['requests']} requests"
        print(
            f"  {row.strategy:10} {row.step:34} {row.seconds:6.2f}s exit {row.exit_code}"
            f"{serving}{probe}",
            flush=True,
        )

    def stack_for(self, strategy: str) -> tuple[PulumiStack, Any]:
        target = create_deploy_target(self.server, f"bench-{strategy}")
        extra: dict[str, Any] = {}
        if strategy == "blue-green":
            extra = {
                "mcp:app": {"strategy": "blue-green"},
                "mcp:proxy": {
                    "image": self.proxy,
                    "colourPorts": [free_port(), free_port()],
                    "drainSeconds": 1,
                },
            }
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
        *,
        url: str | None = None,
        expect_version: str | None = None,
        prober: Prober | None = None,
    ) -> Row:
        watch = VersionWatch(url, expect_version) if url and expect_version else None
        started = time.monotonic()
        code = action()
        seconds = time.monotonic() - started
        serving = watch.stop() if watch else None
        row = Row(strategy, step, seconds, code, serving)
        self.add(row)
        return row

    def raw_deploy(self, target: Any, version: str) -> int:
        """pull + compose up -d + poll health, in one ssh (what an engineer would type)."""
        image = self.images[version]
        poll = (
            f"n=0; until curl -fsS --max-time 5 {shlex.quote(target.health_url)} 2>/dev/null"
            f' | grep -q \'"version":"{version}"\'; do n=$((n+1)); '
            f"[ $n -ge {int(HEALTH_TIMEOUT / RAW_POLL_S)} ] && exit 13; sleep {RAW_POLL_S}; done"
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
                other = "v2" if deployed == "v1" else "v1"
                stack.set_config("mcp:imageTag", other)
                self.timed(
                    "recreate",
                    f"pulumi up -> {other}",
                    lambda: stack.up(check=False).returncode,
                    url=target.health_url,
                    expect_version=other,
                )
                deployed = other
                # The raw commands switch away and back, so Pulumi's view stays true.
                for version in ("v2" if deployed == "v1" else "v1", deployed):
                    self.timed(
                        "recreate",
                        f"raw commands -> {version}",
                        lambda v=version: self.raw_deploy(target, v),
                        url=target.health_url,
                        expect_version=version,
                    )
            current = deployed
            for _ in range(reps):
                self.timed(
                    "recreate", "pulumi up (no-op)", lambda: stack.up(check=False).returncode
                )
                self.timed(
                    "recreate",
                    "pulumi preview (no-op)",
                    lambda: stack.preview(check=False).returncode,
                )
            stack.set_config("mcp:imageTag", "broken-500")
            self.timed(
                "recreate",
                "pulumi up broken-500 (auto rollback)",
                lambda: stack.up(check=False).returncode,
            )
            previous = "v2" if current == "v1" else "v1"
            self.timed(
                "recreate",
                f"rollback.py --last-good -> {previous}",
                lambda: self.rollback_last_good(stack),
                url=target.health_url,
                expect_version=previous,
            )
        finally:
            stack.remove()
            destroy_deploy_target(self.server, target)

    def blue_green(self) -> None:
        stack, target = self.stack_for("blue-green")
        try:
            stack.up()
            steps: list[tuple[str, Callable[[], int], str | None]] = []
            for version in ("v2", "v1"):
                steps.append((f"pulumi up -> {version}", self._up_tag(stack, version), version))
            steps.append(
                ("pulumi up broken-500 (auto rollback)", self._up_tag(stack, "broken-500"), None)
            )
            steps.append(
                ("rollback.py --last-good -> v2", lambda: self.rollback_last_good(stack), "v2")
            )
            for step, action, version in steps:
                prober = Prober(target.health_url, rate=PROBER_RATE, slow_s=1.0).start()
                time.sleep(0.5)
                row = self.timed(
                    "blue-green", step, action, url=target.health_url, expect_version=version
                )
                time.sleep(0.5)
                row.probe = prober.stop().summary()
                print(
                    f"  {'':10} prober: {row.probe['failed']} failed of {row.probe['requests']}",
                    flush=True,
                )
        finally:
            stack.remove()
            _remove_blue_green(target.project)
            destroy_deploy_target(self.server, target)

    def _up_tag(self, stack: PulumiStack, tag: str) -> Callable[[], int]:
        def action() -> int:
            stack.set_config("mcp:imageTag", tag)
            return stack.up(check=False).returncode

        return action

    def baseline(self, reps: int) -> None:
        """The same CLI's no-op `pulumi up` on a one-resource program."""
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
            for _ in range(reps):
                self.timed(
                    "baseline",
                    "one-resource pulumi up (no-op)",
                    lambda: stack.up(check=False).returncode,
                )
            stack.remove()


def _remove_blue_green(project: str) -> None:
    for name in [f"name=^{project}-proxy$"] + [
        f"label=com.docker.compose.project={project}-{c}" for c in ("blue", "green")
    ]:
        ids = sh("docker", "ps", "-aq", "--filter", name).stdout.split()
        if ids:
            sh("docker", "rm", "-f", *ids)


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


def summarise(rows: list[Row]) -> dict[str, Any]:
    raw = median(rows, "raw commands", "recreate")
    up = median(rows, "pulumi up -> ", "recreate")
    up_serving = median(rows, "pulumi up -> ", "recreate", "serving_after_s")
    noop = median(rows, "pulumi up (no-op)", "recreate")
    preview = median(rows, "pulumi preview (no-op)", "recreate")
    floor = median(rows, "one-resource", "baseline")
    auto = next((r for r in rows if r.strategy == "recreate" and "auto rollback" in r.step), None)
    back = next(
        (r for r in rows if r.strategy == "recreate" and r.step.startswith("rollback.py")), None
    )
    bg = [r for r in rows if r.strategy == "blue-green"]

    def ratio(a: float | None, b: float | None) -> float | None:
        return round(a / b, 2) if a and b else None

    return {
        "raw_commands_s": raw and round(raw, 2),
        "pulumi_up_new_tag_s": up and round(up, 2),
        "pulumi_up_new_tag_serving_after_s": up_serving and round(up_serving, 2),
        "ratio_pulumi_up_vs_raw": ratio(up, raw),
        "noop_up_s": noop and round(noop, 2),
        "noop_preview_s": preview and round(preview, 2),
        "one_resource_noop_up_s": floor and round(floor, 2),
        "ratio_noop_vs_one_resource": ratio(noop, floor),
        "auto_rollback_s": auto and round(auto.seconds, 2),
        "auto_rollback_exit": auto and auto.exit_code,
        "auto_rollback_past_deadline_s": auto and round(auto.seconds - HEALTH_TIMEOUT, 2),
        "rollback_py_s": back and round(back.seconds, 2),
        "rollback_py_serving_after_s": back
        and back.serving_after_s
        and round(back.serving_after_s, 2),
        "blue_green_failed_requests": sum(r.probe.get("failed", 0) for r in bg),
        "blue_green_requests": sum(r.probe.get("requests", 0) for r in bg),
    }


def print_summary(summary: dict[str, Any]) -> None:
    print("\nmeasure                                                  value")
    print("-" * 66)
    for key, value in summary.items():
        print(f"{key:56} {value}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", type=Path, help="write the results as JSON to this file")
    parser.add_argument(
        "--reps", type=int, default=3, help="repetitions of each deploy (default 3)"
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
    print(
        f"pulumi {version}; health check {HEALTH_ATTEMPTS} tries within {HEALTH_TIMEOUT}s; "
        f"raw poll every {RAW_POLL_S}s; prober {PROBER_RATE} req/s",
        flush=True,
    )
    bench = Bench(server, env, images, proxy)
    bench.baseline(args.reps)
    bench.recreate(args.reps)
    bench.blue_green()
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
