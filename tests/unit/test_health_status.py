"""mcp:app.healthStatus (issue 16 item 10): the HTTP status that means healthy, validated by the
settings as the scripts' health_validate does, and passed to every step that health-checks."""

from __future__ import annotations

import shlex

import pytest

from components.plan import deploy_plan
from tests.unit.conftest import TestKeys, base_config
from tests.unit.test_plan_contract import check
from tests.unit.test_settings import load, problems_naming, with_value


def test_health_status_defaults_to_200_and_keeps_the_command_lines(test_keys: TestKeys) -> None:
    settings = load(base_config(test_keys))
    assert settings.app.health_status == 200
    assert "--health-status" not in deploy_plan(settings).step("release").command()


def test_health_status_reaches_release_and_restore(test_keys: TestKeys) -> None:
    config = with_value(base_config(test_keys), "app.healthStatus", 204)
    settings = load(config)
    assert settings.app.health_status == 204
    release = deploy_plan(settings).step("release")
    words = shlex.split(release.command())
    assert words[words.index("--health-status") + 1] == "204"
    assert check(deploy_plan(settings), "release").returncode == 0  # the script accepts it
    config["restoreBackup"] = "latest"
    restore = deploy_plan(load(config))
    words = shlex.split(restore.step("restore").command())
    assert words[words.index("--health-status") + 1] == "204"
    assert check(restore, "restore").returncode == 0


@pytest.mark.parametrize("value", [99, 600, "OK", "2OO", True])
def test_a_status_that_is_not_an_http_code_is_refused(test_keys: TestKeys, value: object) -> None:
    problems = problems_naming(
        with_value(base_config(test_keys), "app.healthStatus", value), "app.healthStatus"
    )
    assert problems, "accepted"
    assert problems[0].endswith("Example: 200"), problems
