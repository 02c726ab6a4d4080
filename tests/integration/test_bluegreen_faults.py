"""Blue-green faults on the server (issue 16, items 6 and 7), against a real server under load.

Item 6: the proxy switch and the record of the live colour are one step that survives a kill
at any line. A release or restore killed between pointing the proxy and writing
.deploy/live-colour (or a full disk there) leaves a record that names the idle colour; the
next release or restore must reconcile it from what the proxy really routes to, so it starts
the new version in the truly idle colour (no downtime), and a failing one never touches the
serving colour. The states a kill can leave are made by hand (as the deploy user), then the
deploy plan's own steps run with a prober on the public port.

Item 7: a failed colour ran with the shared ./data mounted; whatever it wrote is kept, so the
release must not end with "ROLLED BACK", and must name the backup taken right before it
started (which holds the data as it was) with the command that restores it.
"""

from __future__ import annotations

import re
import tarfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from conftest import SAMPLE_COMPOSE, free_port
from test_remote_scripts import one_json_line, q
from test_zero_downtime import BlueGreen, assert_no_failure

from local.target import remove_blue_green

if TYPE_CHECKING:
    from conftest import LocalServer

    from components.settings import Settings


@dataclass
class Faults(BlueGreen):
    compose_source: Path = SAMPLE_COMPOSE

    def settings(self, restore_backup: str | None = None) -> Settings:
        """BlueGreen's settings, with this compose file as the app's compose source."""
        s = super().settings(restore_backup)
        return replace(s, app=replace(s.app, compose_source=str(self.compose_source)))

    @property
    def state(self) -> Path:
        return self.target.deploy_dir / ".deploy"

    def write_state(self, name: str, text: str | None) -> None:
        """.deploy/<name> := text (None: removed), as the deploy user."""
        path = self.state / name
        command = f"rm -f {q(path)}" if text is None else f"printf %s {q(text)} > {q(path)}"
        proc = self.run(command)
        assert proc.returncode == 0, proc.stderr


@pytest.fixture
def bg(local_server: LocalServer, sample_images, proxy_image, make_deploy_target, http, request):
    target = make_deploy_target(request.node.name)
    remote = Faults(
        local_server,
        target,
        sample_images,
        http,
        proxy_image=proxy_image,
        colour_ports=(free_port(), free_port()),
    )
    remote.install_scripts()
    yield remote
    remove_blue_green(target.project)


def serving_green(bg: Faults) -> None:
    """v1 in blue, then v2 in green: green serves, blue is stopped."""
    proc = bg.pipeline("v1")
    assert proc.returncode == 0, proc.stderr
    proc = bg.pipeline("v2")
    assert proc.returncode == 0, proc.stderr
    assert one_json_line(proc)["colour"] == "green" and bg.live_colour() == "green"
    bg.wait_lock_free(60)
    assert bg.running(f"{bg.target.project}-blue") == []


# What a kill, a reboot or a full disk can leave after the proxy moved to green:
# (.deploy/live-colour, .deploy/live-colour.next)
INTERRUPTED = {
    # killed after the switch, before the record (the intent of this version is left)
    "after-switch": ("blue\n", "green {blue} {green}\n"),
    # the same, left by a version that wrote no intent (or a record lost otherwise)
    "stale-record": ("blue\n", None),
    # the record was never written
    "no-record": (None, "green {blue} {green}\n"),
    # killed after the record, before the intent was removed
    "after-record": ("green\n", "green {blue} {green}\n"),
}


def interrupt(bg: Faults, case: str) -> None:
    record, intent = INTERRUPTED[case]
    blue, green = bg.colour_ports
    bg.write_state("live-colour", record)
    bg.write_state("live-colour.next", intent and intent.format(blue=blue, green=green))


def assert_reconciled(bg: Faults, stderr: str, case: str) -> None:
    record, _ = INTERRUPTED[case]
    if record != "green\n":  # the record named another colour, or none
        said = record.strip() if record else "nothing"
        expected = (
            f"reconciled live colour: the proxy routes to green (127.0.0.1:{bg.colour_ports[1]})"
            f" but .deploy/live-colour said {said}: a previous release was interrupted"
        )
        assert expected in stderr, stderr
    else:
        assert "reconciled live colour: the proxy routes to green" in stderr, stderr
    assert not (bg.state / "live-colour.next").exists()


@pytest.mark.parametrize("case", list(INTERRUPTED))
def test_release_after_an_interrupted_switch_goes_to_the_idle_colour(bg: Faults, case: str) -> None:
    serving_green(bg)
    interrupt(bg, case)

    prober = bg.probe()
    proc = bg.pipeline("v1")
    report = prober.stop()

    assert proc.returncode == 0, proc.stderr
    assert one_json_line(proc)["colour"] == "blue", "the release did not go to the idle colour"
    assert_no_failure(report, f"release after an interrupted switch ({case})", proc.stderr)
    assert report.versions[0] == "v2" and report.versions[-1] == "v1", report.summary()
    assert bg.live_colour() == "blue"
    bg.wait_lock_free(60)
    assert bg.running(f"{bg.target.project}-blue") == [bg.images["v1"]]
    assert bg.running(f"{bg.target.project}-green") == [], "the old colour was not stopped"
    # backup.sh, after the release: the live colour's image.
    assert bg.backup().returncode == 0
    assert bg.manifest(bg.last_backup)["image"] == bg.images["v1"]
    assert_reconciled(bg, proc.stderr, case)


def test_release_after_a_killed_canary_sends_the_split_back_to_the_old_colour(bg: Faults) -> None:
    """Issue 20: a canary killed mid-step leaves the proxy splitting traffic between the colour
    it started from (green, recorded live) and its canary (blue, named by the intent). The next
    release sends all traffic back to green through the intent-first switch, then releases
    into the truly idle colour (blue) as usual."""
    serving_green(bg)
    blue, green = bg.colour_ports
    # A canary step sends 10% to blue: every tenth of the proxy's 100 slot files names blue's
    # port (bg_write_slots); Caddy reads them per request.
    split = (
        f"cd {q(bg.state / 'proxy' / 'slots')} && for i in $(seq -w 0 99); do "
        f'if (( 10#$i % 10 == 9 )); then echo {blue}; else echo {green}; fi > "$i"; done'
    )
    proc = bg.run(split)
    assert proc.returncode == 0, proc.stderr
    bg.write_state("live-colour.next", f"blue {blue} {green} 10\n")

    proc = bg.pipeline("v1")

    assert proc.returncode == 0, proc.stderr
    assert (
        f"reconciled: the proxy routes to a canary split (port:weight {green}:90 {blue}:10) left "
        "by an interrupted canary release" in proc.stderr
    ), proc.stderr
    assert "sending all traffic back to colour green, the one it started from" in proc.stderr
    assert one_json_line(proc)["colour"] == "blue", "the release did not go to the idle colour"
    assert bg.live_colour() == "blue"
    assert not (bg.state / "live-colour.next").exists()
    slots = sorted((bg.state / "proxy" / "slots").iterdir())
    assert len(slots) == 100 and {f.read_text() for f in slots} == {f"{blue}\n"}, slots


@pytest.mark.parametrize("case", ["after-switch", "stale-record"])
def test_failing_release_after_an_interrupted_switch_keeps_serving(bg: Faults, case: str) -> None:
    serving_green(bg)
    interrupt(bg, case)

    bg.attempts, bg.timeout = 4, 8
    prober = bg.probe()
    proc = bg.pipeline("broken-500")
    report = prober.stop()

    assert proc.returncode == 10, proc.stderr
    assert_no_failure(report, f"failing release after an interrupted switch ({case})")
    assert set(report.versions) == {"v2"}, report.summary()
    assert bg.live_colour() == "green"
    bg.wait_lock_free(60)
    assert bg.running(f"{bg.target.project}-green") == [bg.images["v2"]]
    assert bg.running(f"{bg.target.project}-blue") == [], "the failed colour is still running"
    assert "(colour green) kept serving; no traffic moved" in proc.stderr.strip().splitlines()[-1]
    assert_reconciled(bg, proc.stderr, case)


def test_restore_after_an_interrupted_switch_goes_to_the_idle_colour(bg: Faults) -> None:
    serving_green(bg)
    v1_backup = bg.last_backup  # taken by the v2 release, while v1 was serving
    interrupt(bg, "stale-record")

    prober = bg.probe()
    proc = bg.restore(v1_backup)
    report = prober.stop()

    assert proc.returncode == 0, proc.stderr
    assert_no_failure(report, "restore after an interrupted switch", proc.stderr)
    assert report.versions[0] == "v2" and report.versions[-1] == "v1", report.summary()
    assert bg.live_colour() == "blue" and bg.version() == "v1"
    # What the restore replaced was the serving colour's release (v2), not the idle one.
    assert bg.manifest(str(one_json_line(proc)["replaced_backup"]))["image"] == bg.images["v2"]
    assert bg.running(f"{bg.target.project}-green") == []
    assert_reconciled(bg, proc.stderr, "stale-record")


# ---------------------------------------------------------------- item 7


def test_failed_colour_that_wrote_data_is_not_a_clean_rollback(bg: Faults, tmp_path: Path) -> None:
    """The writer image appends to ./data/stream.log from its start; published on a port it
    does not listen on, it never becomes healthy."""
    proc = bg.pipeline("v1")
    assert proc.returncode == 0, proc.stderr
    bg.post("written-by-v1")
    unhealthy = tmp_path / "docker-compose.unhealthy.yml"
    sample = SAMPLE_COMPOSE.read_text()
    assert '}:8080"' in sample
    unhealthy.write_text(sample.replace('}:8080"', '}:8081"'))  # nothing listens on 8081
    bg.compose_source = unhealthy
    bg.attempts, bg.timeout = 4, 8

    prober = bg.probe()
    proc = bg.pipeline("writer")
    report = prober.stop()

    assert proc.returncode == 10, proc.stderr
    found = re.search(r"\[release\] backup ([0-9]{8}_[0-9]{6}) verified", proc.stderr)
    assert found, proc.stderr
    backup = found.group(1)
    last = proc.stderr.strip().splitlines()[-1]
    assert "ROLLED BACK" not in last, last
    assert "the DATA is NOT rolled back" in last, last
    assert "(colour blue) kept serving; no traffic moved" in last, last
    assert "the failed colour green ran for " in last, last
    assert "mounted read-write (bind ./data -> /data)" in last, last
    assert "whatever it wrote there is KEPT" in last and "./data/stream.log" in last, last
    assert f"Backup {backup}, taken right before it started, holds the data as it was" in last
    assert f"restore.sh --deploy-dir {bg.target.deploy_dir} " in last, last
    assert f"--backup {backup} " in last and "--strategy blue-green" in last, last
    assert_no_failure(report, "failed release of a writer")
    assert set(report.versions) == {"v1"}, report.summary()

    # The data: the failed colour's writes are kept beside the live colour's; the backup
    # named holds the data as it was before the failed colour started.
    bg.wait_lock_free(60)
    assert bg.running(f"{bg.target.project}-green") == []
    stream = bg.target.deploy_dir / "data" / "stream.log"
    assert stream.exists() and stream.stat().st_size > 0
    assert "written-by-v1" in bg.data()
    with tarfile.open(bg.archive(backup)) as tar:
        names = tar.getnames()
    assert "./data/stream.log" not in names and "./data/items.txt" in names, names
    # The restore command it prints works, and gives the data as it was.
    command = last.split("restoring it also drops what the live colour wrote since: ", 1)[1]
    command = command.split(" (or: ", 1)[0]
    proc = bg.run(command)
    assert proc.returncode == 0, proc.stderr
    assert not stream.exists()
    assert "written-by-v1" in bg.data() and bg.version() == "v1"


def test_failed_colour_that_never_started_is_a_clean_rollback(bg: Faults, tmp_path: Path) -> None:
    """A compose file both colours cannot run (container_name) is refused before anything
    starts: the data was not touched, and the rollback is clean (and says why)."""
    proc = bg.pipeline("v1")
    assert proc.returncode == 0, proc.stderr
    fixed = tmp_path / "docker-compose.fixed-name.yml"
    sample = SAMPLE_COMPOSE.read_text()
    assert "    image: ${MCP_IMAGE" in sample
    fixed.write_text(
        sample.replace(
            "    image: ${MCP_IMAGE", "    container_name: fixed\n    image: ${MCP_IMAGE"
        )
    )
    bg.compose_source = fixed
    proc = bg.pipeline("v2")
    assert proc.returncode == 10, proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert "ROLLED BACK without downtime" in last, last
    assert "the data was not touched: the failed colour green never started" in last, last
