"""Zero downtime through the engine: `blue-green` deploys, a broken release and a rollback with
`pulumi up` / `rollback.py`, under a prober sending >= 20 requests per second."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from local.prober import Prober
from local.target import free_port, remove_blue_green
from tests.e2e.test_rollback import rollback

if TYPE_CHECKING:
    from collections.abc import Callable

    from local.target import HttpProbe, LocalServer
    from tests.e2e.conftest import E2EStack

MIN_RATE = 20.0


def test_deploys_a_broken_release_and_a_rollback_lose_no_request(
    make_stack: Callable[..., E2EStack],
    proxy_image: str,
    sample_images: dict[str, str],
    http: HttpProbe,
) -> None:
    e2e = make_stack(
        "blue-green",
        config={
            "mcp:app": {"strategy": "blue-green"},
            "mcp:proxy": {
                "image": proxy_image,
                "colourPorts": [free_port(), free_port()],
                "drainSeconds": 1,
            },
        },
    )
    try:
        e2e.up()
        assert e2e.served_version(http) == "v1"

        prober = Prober(e2e.target.health_url, rate=40).start()
        e2e.set_tag("v2")
        e2e.up()
        e2e.set_tag("broken-500")
        broken = e2e.up(check=False)
        back = rollback(e2e, "--last-good")
        report = prober.stop()

        assert broken.returncode != 0, broken.stdout
        assert "kept serving; no traffic moved" in broken.stdout + broken.stderr
        assert back.returncode == 0, back.stdout + back.stderr
        summary = json.dumps(report.summary())
        assert report.rate >= MIN_RATE, f"prober too slow to prove anything: {summary}"
        assert not report.failed, f"requests failed: {summary}"
        versions = report.versions
        assert versions[0] == "v1" and versions[-1] == "v1", summary
        assert "v2" in versions and "broken-500" not in versions, summary
        # The digest v1 served with (rollback.py pins it), never whatever the tag names now.
        assert e2e.stack.outputs()["image"].startswith(sample_images["v1"] + "@sha256:")
    finally:
        remove_blue_green(e2e.target.project)


def test_the_default_stock_proxy_image_switches_without_losing_a_request(
    make_stack: Callable[..., E2EStack],
    stock_layout_proxy_image: str,
    http: HttpProbe,
    local_server: LocalServer,
) -> None:
    """The default proxy is the official Caddy image (no launcher: Caddy binds the port
    itself). It cannot be pulled here, so a stand-in of its shape (proxy/build.sh
    --stock-layout: caddy on PATH, no entrypoint, no mcp label) is given as mcp:proxy.image:
    the scripts run it as a stock image, and v1 -> v2 -> v1 loses no request."""
    e2e = make_stack(
        "bg-stock",
        config={
            "mcp:app": {"strategy": "blue-green"},
            "mcp:proxy": {
                "image": stock_layout_proxy_image,
                "colourPorts": [free_port(), free_port()],
                "drainSeconds": 1,
            },
        },
    )
    try:
        e2e.up()
        assert e2e.served_version(http) == "v1"
        proxy = f"{e2e.target.project}-proxy"
        started = local_server.ssh(
            f"docker inspect -f '{{{{json .Config.Entrypoint}}}} {{{{.Config.Image}}}}' {proxy}",
            check=True,
        ).stdout.split()
        assert started == ['["caddy"]', stock_layout_proxy_image], started
        config = json.loads(
            local_server.ssh(
                f"cat {e2e.target.deploy_dir}/.deploy/proxy/caddy.json", check=True
            ).stdout
        )
        listen = config["apps"]["http"]["servers"]["mcp"]["listen"]
        assert listen == [e2e.target.health_url.split("/")[2]], listen  # not the launcher's fd/3

        prober = Prober(e2e.target.health_url, rate=40).start()
        e2e.set_tag("v2")
        e2e.up()
        e2e.set_tag("v1")
        e2e.up()
        report = prober.stop()
        summary = json.dumps(report.summary())
        assert report.rate >= MIN_RATE, f"prober too slow to prove anything: {summary}"
        assert not report.failed, f"requests failed: {summary}"
        assert "v2" in report.versions and report.versions[-1] == "v1", summary
    finally:
        remove_blue_green(e2e.target.project)
