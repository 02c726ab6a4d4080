"""Pulumi.staging.yaml beside Pulumi.production.yaml on one server: the committed files,
with this test's secrets, are valid settings, and nothing one stack owns on the server is the
other's (deploy dir, backups, compose project, ports, proxy)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from components.plan import deploy_plan
from components.settings import Settings
from tests.unit.conftest import TestKeys, base_config
from tests.unit.test_settings import load

ROOT = Path(__file__).resolve().parents[2]


def committed(stack: str, keys: TestKeys) -> Settings:
    raw = yaml.safe_load((ROOT / f"Pulumi.{stack}.yaml").read_text())["config"]
    config: dict[str, Any] = {key.removeprefix("mcp:"): value for key, value in raw.items()}
    secrets = base_config(keys)
    config["server"]["hostKey"] = secrets["server"]["hostKey"]
    for key in ("sshPrivateKey", "registryPullPassword", "envFileContent", "imageTag"):
        config[key] = secrets[key]
    config["image"]["context"] = str(keys.app_dir)
    # The compose file is the application repository's (not in this one): the test's copy.
    config["app"]["composeSource"] = secrets["app"]["composeSource"]
    return load(config)


def test_staging_and_production_share_the_server_and_nothing_on_it(test_keys: TestKeys) -> None:
    staging, production = committed("staging", test_keys), committed("production", test_keys)
    assert staging.server.host == production.server.host
    assert staging.image.registry == production.image.registry
    assert staging.image.repository == production.image.repository  # one image, promoted
    assert staging.github is None  # the GitHub side is declared once, not by both stacks
    for name, theirs, ours in (
        ("deploy dir", production.paths.deploy_dir, staging.paths.deploy_dir),
        ("backup dir", production.paths.backup_dir, staging.paths.backup_dir),
        ("public URL", production.app.public_url, staging.app.public_url),
        ("health URL", production.app.health_url, staging.app.health_url),
    ):
        assert theirs != ours, f"staging and production share their {name}: {ours}"
    assert not staging.paths.deploy_dir.startswith(production.paths.deploy_dir + "/")
    assert not staging.paths.backup_dir.startswith(production.paths.deploy_dir + "/")
    plans = {
        name: deploy_plan(settings).step("release").command({"image": "ghcr.io/feustey/mcp:x"})
        for name, settings in (("staging", staging), ("production", production))
    }
    # The compose project (the deploy dir's name) and the proxy's ports differ too.
    for option in ("--proxy-listen", "--colour-ports", "--deploy-dir"):
        values = {name: plan.split(option + " ", 1)[1].split()[0] for name, plan in plans.items()}
        assert values["staging"] != values["production"], (option, values)
