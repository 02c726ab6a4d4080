#!/usr/bin/env python3
"""Rollback soak: many deploys and rollbacks through the real engine, under load, on blue-green.

    .venv/bin/python bench/soak.py [--cycles 4] [--json bench/soak-results.json]

One blue-green stack on the local server, one prober at 20 requests/s on its public port for
the whole run, and cycles of eleven steps, each a `pulumi up` or a `python rollback.py` as a
user runs them: good versions (each a new image with its own digest), broken ones (health 500,
crash) that the release rolls back itself, `--last-good`, `--image-tag <short prefix>` and
`--backup latest`. Before every step an item is written to the app's data; after every step:

- every rollback answers with a version that served healthy earlier in the run and that no
  rollback has moved away from since (what the soak itself saw, not what the ledger says);
- every acknowledged item is still in the live data, or, after a `--backup` restore (which by
  design restores the data as it was when that backup was taken), in the backup the restore
  took of what it replaced: nothing is lost;
- at the end: failed requests over the whole run (the target is 0).

Prints one line per step and a summary, and writes JSON. Not part of the pytest suite
(it takes about 15 minutes); its figures go in bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import secrets
import shlex
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT)]

from bench.run import Bench, ensure_images, sh  # noqa: E402
from local.prober import Prober  # noqa: E402
from local.stack import PulumiStack, pulumi_environment  # noqa: E402
from local.target import (  # noqa: E402
    DeployTarget,
    HttpProbe,
    LocalServer,
    destroy_deploy_target,
    remove_blue_green,
    start_local_server,
)

PROBER_RATE = 20


@dataclass
class Soak:
    server: LocalServer
    stack: PulumiStack
    target: DeployTarget
    base_image: str  # the v1 sample: every soak version derives from it
    http: HttpProbe = field(default_factory=HttpProbe)
    served_ok: set[str] = field(default_factory=set)  # versions that served healthy
    moved_away: set[str] = field(default_factory=set)  # versions a rollback left
    acknowledged: list[str] = field(default_factory=list)  # items the app stored
    steps: list[dict[str, Any]] = field(default_factory=list)
    counter: int = 0

    # ------------------------------------------------------------------ images

    def new_version(self, mode: str = "ok") -> str:
        """A new image (own digest) derived from v1 without compiling: its tag is its version."""
        self.counter += 1
        tag = f"soak{self.counter:02d}-{mode}-{secrets.token_hex(16)}"[:40]
        name = self.base_image.rsplit(":", 1)[0]
        dockerfile = (
            f"FROM {self.base_image}\nENV APP_VERSION={tag} APP_MODE={mode}\nLABEL mcp.soak={tag}\n"
        )
        with tempfile.TemporaryDirectory() as context:
            Path(context, "Dockerfile").write_text(dockerfile)
            for argv in (
                ["docker", "build", "-q", "-t", f"{name}:{tag}", context],
                ["docker", "push", "-q", f"{name}:{tag}"],
            ):
                proc = sh(*argv)
                if proc.returncode != 0:
                    raise RuntimeError(f"{' '.join(argv)} failed: {proc.stderr}")
        return tag

    # ------------------------------------------------------------------ app

    def serving(self) -> str:
        status, body = self.http.get(self.target.health_url)
        if status != 200:
            raise AssertionError(f"health answered {status}: {body}")
        return str(json.loads(body)["version"])

    def write_item(self) -> None:
        item = f"item-{len(self.acknowledged):03d}-{secrets.token_hex(4)}"
        url = self.target.health_url.replace("/health", "/data")
        status, _ = self.http.post(url, item)
        if status == 201:
            self.acknowledged.append(item)

    def live_items(self) -> set[str]:
        status, body = self.http.get(self.target.health_url.replace("/health", "/data"))
        if status != 200:
            raise AssertionError(f"GET /api/v1/data answered {status}")
        return set(body.split())

    def items_in_newest_backup(self) -> set[str]:
        """The items of the newest archive (a restore's backup of what it replaced)."""
        backups = self.target.backup_dir
        command = (
            f"newest=$(ls -t {shlex.quote(str(backups))}/mcp-backup-*.tar.gz | head -n 1) && "
            'tar -xOzf "$newest" ./data/items.txt 2>/dev/null || true'
        )
        return set(self.server.ssh(command, check=True).stdout.split())

    # ------------------------------------------------------------------ steps

    def up(self, tag: str) -> int:
        pin = self.stack.run("config", "get", "mcp:imagePin", check=False)
        if pin.returncode == 0:  # the explicit new version after a rollback
            self.stack.run("config", "rm", "mcp:imagePin")
        self.stack.set_config("mcp:imageTag", tag)
        return self.stack.up(check=False).returncode

    def rollback(self, *args: str) -> int:
        proc = subprocess.run(
            [sys.executable, str(ROOT / "rollback.py"), "--stack", self.stack.name, *args, "--yes"],
            cwd=ROOT,
            env=self.stack.env,
            capture_output=True,
            text=True,
            check=False,
            stdin=subprocess.DEVNULL,
            timeout=900,
        )
        if proc.returncode != 0:
            print(proc.stdout[-2000:], proc.stderr[-3000:], sep="\n", flush=True)
        return proc.returncode

    def step(self, kind: str, action: Callable[[], int], *, expect: str | None) -> None:
        """Runs one step; `expect`: "ok" (exit 0), "fail" (non-zero: a broken release)."""
        before = self.serving()
        self.write_item()
        started = time.monotonic()
        code = action()
        seconds = time.monotonic() - started
        after = self.serving()
        problems = []
        if (expect == "ok") != (code == 0):
            problems.append(f"exit {code}, expected {'0' if expect == 'ok' else 'non-zero'}")
        is_rollback = kind.startswith("rollback")
        landed_well = None
        if is_rollback:
            landed_well = after in self.served_ok and after not in self.moved_away
            if not landed_well:
                problems.append(f"rolled back to {after}, which never served healthy or was left")
            if after != before:
                self.moved_away.add(before)
        if code == 0:
            self.served_ok.add(after)
        elif after != before:
            problems.append(f"a failed step changed what serves: {before} -> {after}")
        live = self.live_items()
        missing = [item for item in self.acknowledged if item not in live]
        restored_from_backup = kind == "rollback --backup"
        if missing and restored_from_backup:
            kept = self.items_in_newest_backup()
            lost = [item for item in missing if item not in kept]
            # The data of the restored backup is the new truth: items written since are in the
            # backup of what the restore replaced, and no longer expected live.
            self.acknowledged = [item for item in self.acknowledged if item in live]
            missing = lost
        if missing:
            problems.append(f"data lost: {missing}")
        row = {
            "step": len(self.steps) + 1,
            "kind": kind,
            "exit": code,
            "started": started,
            "ended": time.monotonic(),
            "seconds": round(seconds, 2),
            "landed_on_a_version_that_served_healthy": landed_well,
            "before": before,
            "after": after,
            "problems": problems,
        }
        self.steps.append(row)
        print(
            f"{row['step']:3} {kind:24} exit {code:3} {seconds:6.1f}s  {before[:14]} -> "
            f"{after[:14]}  {'; '.join(problems) or 'ok'}",
            flush=True,
        )

    def cycle(self) -> None:
        g1, g2 = self.new_version(), self.new_version()
        self.step("deploy", lambda: self.up(g1), expect="ok")
        self.step("deploy", lambda: self.up(g2), expect="ok")
        broken = self.new_version("error500")
        self.step("deploy broken (500)", lambda: self.up(broken), expect="fail")
        g3 = self.new_version()
        self.step("deploy", lambda: self.up(g3), expect="ok")
        self.step("rollback --last-good", lambda: self.rollback("--last-good"), expect="ok")
        crash = self.new_version("crash")
        self.step("deploy broken (crash)", lambda: self.up(crash), expect="fail")
        self.step(
            "rollback --image-tag",
            lambda: self.rollback("--image-tag", g1[:12], "--reason", "soak"),
            expect="ok",
        )
        g4 = self.new_version()
        self.step("deploy", lambda: self.up(g4), expect="ok")
        self.step("rollback --backup", lambda: self.rollback("--backup", "latest"), expect="ok")
        g5 = self.new_version()
        self.step("deploy", lambda: self.up(g5), expect="ok")
        self.step("rollback --last-good", lambda: self.rollback("--last-good"), expect="ok")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cycles", type=int, default=4, help="11 steps each (default 4: 44)")
    parser.add_argument("--json", type=Path, help="write the results as JSON to this file")
    args = parser.parse_args()
    server = start_local_server()
    images, proxy = ensure_images(server)
    env = pulumi_environment()
    env["PULUMI_BACKEND_URL"] = f"file://{tempfile.mkdtemp(prefix='soak-backend-')}"
    env["PULUMI_CONFIG_PASSPHRASE"] = secrets.token_hex(16)
    stack, target = Bench(server, env, images, proxy).stack_for("blue-green")
    soak = Soak(server, stack, target, images["v1"])
    try:
        stack.up()
        soak.served_ok.add(soak.serving())
        prober = Prober(target.health_url, rate=PROBER_RATE, slow_s=1.0).start()
        started = time.monotonic()
        for _ in range(args.cycles):
            soak.cycle()
        report = prober.stop()
        total = time.monotonic() - started
        for row in soak.steps:  # failed requests by the step they were sent during
            failed = [f for f in report.failed if row["started"] - 1 <= f.started <= row["ended"]]
            row["failed_requests"] = len(failed)
            if failed:
                row["problems"].append(f"{len(failed)} failed request(s): {failed[0].error[:120]}")
    finally:
        stack.remove()
        remove_blue_green(target.project)
        destroy_deploy_target(server, target)
    kinds: dict[str, int] = {}
    for row in soak.steps:
        kinds[row["kind"]] = kinds.get(row["kind"], 0) + 1
    summary = {
        "steps": len(soak.steps),
        "by_kind": kinds,
        "seconds": round(total, 1),
        "prober": report.summary(),
        "items_written": len(soak.acknowledged),
        "steps_with_problems": [row for row in soak.steps if row["problems"]],
        "rollbacks_to_a_version_that_served_healthy": sum(
            1 for row in soak.steps if row["landed_on_a_version_that_served_healthy"]
        ),
        "rollbacks": sum(1 for row in soak.steps if row["kind"].startswith("rollback")),
    }
    for row in summary["steps_with_problems"]:
        print(f"step {row['step']} ({row['kind']}): {'; '.join(row['problems'])}")
    print(json.dumps({k: v for k, v in summary.items() if k != "prober"}, indent=2))
    print("prober:", json.dumps(report.summary()))
    if args.json:
        args.json.write_text(json.dumps({"summary": summary, "steps": soak.steps}, indent=2))
    ok = not summary["steps_with_problems"] and not report.failed
    print("SOAK", "PASSED" if ok else "FAILED", flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
