"""The suite's own schedule (tests/conftest.py): which xdist group a test file belongs to, and
that the groups are handed out in the order the conftest sets (issue 21)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import ACT_GROUP, TESTS, server_group


def test_act_is_one_group_and_every_server_module_a_group_of_its_own() -> None:
    act_modules = TESTS / "workflows" / "act"
    assert server_group(act_modules / "test_workflows_under_act.py") == ACT_GROUP
    assert server_group(act_modules / "test_staging_under_act.py") == ACT_GROUP
    deploy, remote = (
        TESTS / "e2e" / "test_deploy.py",
        TESTS / "integration" / "test_remote_scripts.py",
    )
    assert server_group(deploy) == "local-server-e2e-test_deploy"
    assert server_group(remote) == "local-server-integration-test_remote_scripts"
    assert "@" not in server_group(deploy)  # xdist splits a node id at its last "@"


@pytest.mark.parametrize(
    "path",
    [
        TESTS / "unit" / "test_plan.py",
        TESTS / "scripts" / "test_swap.py",
        TESTS / "workflows" / "test_schema.py",
    ],
)
def test_tests_with_no_server_are_in_no_group(path: Path) -> None:
    assert server_group(path) is None


def test_xdist_keeps_the_collection_order_of_the_groups(pytestconfig: pytest.Config) -> None:
    # Its default (--loadscope-reorder) starts the groups with the most tests first: act's 8
    # long ones started 421 s into a run, after modules of many short tests.
    assert getattr(pytestconfig.option, "loadscopereorder", False) is False


@pytest.mark.parametrize("workers", [1, 2, 3, 4])
def test_each_worker_draws_ports_from_its_own_slice_below_the_ephemeral_range(
    monkeypatch: pytest.MonkeyPatch, workers: int
) -> None:
    from local.target import _port_range

    monkeypatch.setenv("PYTEST_XDIST_WORKER_COUNT", str(workers))
    slices = []
    for n in range(workers):
        monkeypatch.setenv("PYTEST_XDIST_WORKER", f"gw{n}")
        slices.append(set(_port_range()))
    assert all(len(s) >= 1000 for s in slices), [len(s) for s in slices]
    assert all(min(s) >= 20000 and max(s) < 32768 for s in slices)
    for i, a in enumerate(slices):
        for b in slices[i + 1 :]:
            assert not a & b, "two workers could pick the same port"
