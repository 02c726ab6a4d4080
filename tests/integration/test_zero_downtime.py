"""The blue-green strategy against a real server, under load.

A prober thread sends >= 20 requests per second to the public port (the proxy) through every
deploy, automatic rollback and restore below. What runs is the Pulumi program's own deploy
plan (`components.plan.deploy_plan`) for settings aimed at the test's target: its uploads, then
its steps' exact command lines and stdin over ssh, results read as the program reads them.
Timings are not asserted here (see bench/).
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import pytest
from conftest import SAMPLE_COMPOSE, free_port
from test_remote_scripts import ENV_CONTENT, Remote, one_json_line, q

from components import remote_commands as rc
from components.plan import DeployPlan, deploy_plan
from components.results import parse_result
from components.settings import MappingConfigSource, Settings, load_settings
from local.prober import Prober, ProbeReport
from local.target import remove_blue_green

if TYPE_CHECKING:
    from conftest import LocalServer

MIN_RATE = 20.0
SECRET_KEYS = ("sshPrivateKey", "registryPullPassword", "envFileContent")


@dataclass
class BlueGreen(Remote):
    proxy_image: str = ""
    colour_ports: tuple[int, int] = (0, 0)
    strategy: str = "blue-green"
    uploaded: set[tuple[str, str]] = field(default_factory=set)

    def settings(self, restore_backup: str | None = None) -> Settings:
        """What a stack aimed at this target would hold (attempts and timeout as set now)."""
        s, t = self.server, self.target
        config: dict[str, object] = {
            "server": {
                "host": s.host,
                "port": s.ssh_port,
                "user": s.user,
                "hostKey": s.host_public_key,
            },
            "sshPrivateKey": s.private_key_path.read_text(),
            "paths": {
                "deployDir": str(t.deploy_dir),
                "backupDir": str(t.backup_dir),
                "keepBackups": 5,
                "minFreeMb": 1,
            },
            "app": {
                "composeSource": str(SAMPLE_COMPOSE),
                "composeFile": t.compose_file,
                "envFile": t.env_file,
                "service": t.service,
                "composeProject": t.project,
                "healthUrl": t.health_url,
                "publicUrl": t.health_url.rsplit("/api/", 1)[0],
                "healthAttempts": self.attempts,
                "healthTimeoutSeconds": self.timeout,
                "strategy": self.strategy,
            },
            "image": {"registry": s.registry, "repository": "mcp/app", "pullUser": s.registry_user},
            "imageTag": "unused",  # the step gets the sample image's full reference
            "registryPullPassword": s.registry_password,
            "envFileContent": ENV_CONTENT,
        }
        if self.strategy == "blue-green":
            blue, green = self.colour_ports
            config["proxy"] = {
                "image": self.proxy_image,
                "colourPorts": [blue, green],
                "drainSeconds": 1,
            }
        if restore_backup is not None:
            config["restoreBackup"] = restore_backup
        return load_settings(MappingConfigSource(config, SECRET_KEYS))

    def run_plan(self, plan: DeployPlan, image: str = "") -> subprocess.CompletedProcess[str]:
        """The plan as ServerDeployment runs it: uploads (again when a trigger changed), then
        each step until one fails; returns the last step's process."""
        for upload in plan.uploads:
            key = (upload.remote_path, json.dumps([str(t) for t in upload.triggers]))
            if key in self.uploaded:
                continue
            # A folder's files go into remote_path, as CopyToRemote copies a folder archive.
            files = (
                [
                    (f, f"{upload.remote_path}/{f.relative_to(upload.source)}")
                    for f in sorted(upload.source.rglob("*"))
                    if f.is_file()
                ]
                if upload.source.is_dir()
                else [(upload.source, upload.remote_path)]
            )
            self.server.put_files({remote_path: (source, 0o644) for source, remote_path in files})
            self.uploaded.add(key)
        values = {
            rc.IMAGE.name: image,
            rc.PULL_PASSWORD.name: self.server.registry_password,
            rc.ENV_FILE.name: ENV_CONTENT,
        }
        proc = None
        for step in plan.steps:
            proc = self.run(step.command(values), input=rc.stdin_text(step.stdin or (), values))
            if proc.returncode != 0:
                return proc
            result = parse_result(step.name, proc.stdout, step.result_keys)
            if step.name == "release":
                self.last_backup = result["backup_id"]
                self.backups.append(self.last_backup)
        assert proc is not None
        return proc

    def pipeline(self, name: str) -> subprocess.CompletedProcess[str]:
        """`pulumi up` of sample image `name`: deploy -> release (the first failing step's)."""
        return self.run_plan(deploy_plan(self.settings()), self.images[name])

    def restore(self, backup: str) -> subprocess.CompletedProcess[str]:
        """`rollback.py --backup`: the plan of restore mode."""
        return self.run_plan(deploy_plan(self.settings(restore_backup=backup)))

    def live_colour(self) -> str:
        path = self.target.deploy_dir / ".deploy" / "live-colour"
        return path.read_text().strip() if path.exists() else ""

    def running(self, project: str) -> list[str]:
        """Images of the running containers of a compose project."""
        ids = docker("ps", "-q", "--filter", f"label=com.docker.compose.project={project}").split()
        return [docker("inspect", "-f", "{{.Config.Image}}", cid).strip() for cid in ids]

    def proxy_running(self) -> bool:
        out = docker("ps", "-q", "--filter", f"name=^{self.target.project}-proxy$")
        return bool(out.strip())

    def probe(self) -> Prober:
        return Prober(self.target.health_url, rate=40).start()


def docker(*args: str) -> str:
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=False).stdout


@pytest.fixture
def bg(local_server: LocalServer, sample_images, proxy_image, make_deploy_target, http, request):
    target = make_deploy_target(request.node.name)
    remote = BlueGreen(
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


def assert_no_failure(report: ProbeReport, what: str, log: str = "") -> None:
    summary = json.dumps(report.summary())
    assert report.rate >= MIN_RATE, f"{what}: prober too slow to prove anything: {summary}"
    assert not report.failed, f"{what}: requests failed: {summary}\n{log}"


def test_deploy_v1_to_v2_under_load_loses_no_request(bg: BlueGreen) -> None:
    proc = bg.pipeline("v1")
    assert proc.returncode == 0, proc.stderr
    result = one_json_line(proc)
    assert result["image"] == bg.images["v1"] and result["colour"] == "blue"
    assert bg.live_colour() == "blue" and bg.proxy_running()
    assert bg.version() == "v1"
    bg.post("written-by-v1")

    prober = bg.probe()
    proc = bg.pipeline("v2")
    report = prober.stop()

    assert proc.returncode == 0, proc.stderr
    assert one_json_line(proc)["colour"] == "green"
    assert_no_failure(report, "deploy v1 -> v2", proc.stderr)
    versions = report.versions
    assert versions[0] == "v1" and versions[-1] == "v2", report.summary()
    assert set(versions) == {"v1", "v2"}
    # Traffic moved once: after the first v2 answer, (almost) only v2 (requests in flight at
    # the switch may still be answered by v1).
    first_v2 = versions.index("v2")
    assert versions[first_v2:].count("v1") <= 3, report.summary()
    assert bg.live_colour() == "green"
    # The old colour drains and stops in the background, holding the deploy lock.
    bg.wait_lock_free(60)
    assert bg.running(f"{bg.target.project}-green") == [bg.images["v2"]]
    assert bg.running(f"{bg.target.project}-blue") == [], "the old colour was not stopped"
    # Both colours share the ./data bind mount.
    assert "written-by-v1" in bg.data()
    assert f"MCP_IMAGE={bg.images['v2']}" in (bg.target.deploy_dir / ".env").read_text()
    # The next backup records what the live colour runs.
    assert bg.backup().returncode == 0
    assert bg.manifest(bg.last_backup)["image"] == bg.images["v2"]


@pytest.mark.parametrize("broken", ["broken-500", "broken-crash", "broken-slow"])
def test_broken_version_never_receives_traffic(bg: BlueGreen, broken: str) -> None:
    proc = bg.pipeline("v2")
    assert proc.returncode == 0, proc.stderr
    live = bg.live_colour()
    compose_before = (bg.target.deploy_dir / bg.target.compose_file).read_text()

    bg.attempts, bg.timeout = 4, 8
    prober = bg.probe()
    proc = bg.pipeline(broken)
    report = prober.stop()

    assert proc.returncode == 10, proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert "previous version" in last and "kept serving; no traffic moved" in last, last
    assert bg.images[broken] in last
    assert proc.stdout == ""
    assert_no_failure(report, f"release of {broken}")
    assert set(report.versions) == {"v2"}, f"{broken} answered: {report.summary()}"
    assert bg.live_colour() == live
    bg.wait_lock_free(60)  # the failed colour is stopped by a background job holding the lock
    other = "green" if live == "blue" else "blue"
    assert bg.running(f"{bg.target.project}-{other}") == [], "the failed colour is still running"
    assert bg.running(f"{bg.target.project}-{live}") == [bg.images["v2"]]
    assert (bg.target.deploy_dir / bg.target.compose_file).read_text() == compose_before
    assert f"MCP_IMAGE={bg.images['v2']}" in (bg.target.deploy_dir / ".env").read_text()


def test_manual_restore_under_load_loses_no_request(bg: BlueGreen) -> None:
    assert bg.pipeline("v1").returncode == 0
    bg.post("before-v2")
    assert bg.pipeline("v2").returncode == 0
    v1_backup = bg.last_backup  # taken while v1 was serving
    assert bg.manifest(v1_backup)["image"] == bg.images["v1"]

    prober = bg.probe()
    proc = bg.restore(v1_backup)
    report = prober.stop()

    assert proc.returncode == 0, proc.stderr
    result = one_json_line(proc)
    assert result["restored_backup"] == v1_backup and result["image"] == bg.images["v1"]
    assert bg.manifest(str(result["replaced_backup"]))["image"] == bg.images["v2"]
    assert_no_failure(report, "manual restore")
    assert report.versions[0] == "v2" and report.versions[-1] == "v1", report.summary()
    assert bg.version() == "v1"
    assert "before-v2" in bg.data()
    assert bg.leftovers() == []
    assert not [p for p in bg.target.deploy_dir.iterdir() if p.name.startswith(".mcp-replaced")]


def test_restore_of_a_broken_backup_keeps_serving(bg: BlueGreen) -> None:
    """A restore whose image is unhealthy never takes traffic either (exit 12)."""
    assert bg.pipeline("v2").returncode == 0
    assert bg.pipeline("v1").returncode == 0
    # A backup whose manifest names the broken image: a copy of the last one, edited.
    proc = bg.run(
        "set -e; d=$(mktemp -d); "
        f"tar -xzf {q(bg.archive(bg.last_backup))} -C $d; "
        f"sed -i 's|^image=.*|image={bg.images['broken-500']}|' $d/.mcp-backup-manifest; "
        f"tar -czf {q(bg.target.backup_dir)}/mcp-backup-20990101_000000.tar.gz -C $d .; rm -rf $d"
    )
    assert proc.returncode == 0, proc.stderr
    bg.attempts, bg.timeout = 3, 6
    prober = bg.probe()
    proc = bg.restore("20990101_000000")
    report = prober.stop()
    assert proc.returncode == 12, proc.stderr
    assert "kept serving; no traffic moved" in proc.stderr
    assert_no_failure(report, "failed restore")
    assert set(report.versions) == {"v1"}
    assert bg.version() == "v1"
    assert bg.leftovers() == []


def test_recreate_stays_the_default_and_strategies_switch_both_ways(bg: BlueGreen) -> None:
    bg.strategy = "recreate"
    proc = bg.pipeline("v1")
    assert proc.returncode == 0, proc.stderr
    assert "colour" not in one_json_line(proc)
    assert bg.live_colour() == "" and not bg.proxy_running()
    assert bg.running(bg.target.project) == [bg.images["v1"]]

    bg.strategy = "blue-green"  # recreate -> blue-green (a short gap, once)
    proc = bg.pipeline("v2")
    assert proc.returncode == 0, proc.stderr
    assert bg.live_colour() == "blue" and bg.proxy_running()
    bg.wait_lock_free(60)
    assert bg.running(bg.target.project) == []
    assert bg.version() == "v2"

    bg.strategy = "recreate"  # and back
    proc = bg.pipeline("v1")
    assert proc.returncode == 0, proc.stderr
    assert bg.live_colour() == "" and not bg.proxy_running()
    assert bg.running(f"{bg.target.project}-blue") == []
    assert bg.running(bg.target.project) == [bg.images["v1"]]
    assert bg.version() == "v1"
