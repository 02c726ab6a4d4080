"""Runs with pytest-xdist (`-n 3 --dist loadgroup`, as tools/test.sh does). The tests that use
the local deploy target (sshd, Docker and the registry on 127.0.0.1) run in groups, each in one
worker, its tests in order, never two tests of a group at once:

* `local-server-act`: tests/workflows/act, the workflows run by act (one stack's history, in
  order; the longest group, so it starts first);
* one group per module of tests/integration and tests/e2e (each module's fixtures, targets and
  stacks are its own).

Three groups run at the same time, one per worker, on the same server: every test makes its own
deploy target (its own directories, ports, compose project and stack), so they share only the
daemons, the sample and proxy images (built under a host-wide lock, local/target.py) and the
toolchain (read only; act's runs get their own PULUMI_HOME). The tests that need no server (unit
tests on Pulumi's mocks, scripts on stubs, workflow files) come last, spread over all workers.
"""

from __future__ import annotations

from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
ACT = TESTS / "workflows" / "act"
# The folders whose every module is a group of its own.
SERVER_MODULES = (TESTS / "integration", TESTS / "e2e")
ACT_GROUP = "local-server-act"


def server_group(path: Path) -> str | None:
    """The xdist group of a test file that uses the local server, or None."""
    if path.is_relative_to(ACT):
        return ACT_GROUP
    if any(path.is_relative_to(folder) for folder in SERVER_MODULES):
        return f"local-server-{path.parent.name}-{path.stem}"  # no "@": xdist splits at it
    return None


def _schedule_rank(item: pytest.Item) -> int:
    """act's group first, then the other server-bound modules, then the tests with no server."""
    group = server_group(item.path)
    return 0 if group == ACT_GROUP else 1 if group is not None else 2


def pytest_configure(config: pytest.Config) -> None:
    # xdist's loadgroup hands out the groups biggest first by *number of tests*
    # (`--loadscope-reorder`, its default), not in collection order: act's 8 long tests started
    # after the modules with more, shorter ones (421 s into a run, issue 21). Keep the order
    # this file sets.
    if hasattr(config.option, "loadscopereorder"):
        config.option.loadscopereorder = False


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    loadgroup = bool(getattr(config.option, "loadgroup", False))  # set in xdist's workers
    # xdist hands out work in collection order: the longest group starts at once on one worker,
    # the server-bound modules go through the other (and then both), and the short tests that
    # need no server fill in at the end. A stable sort: each group keeps its order.
    items.sort(key=_schedule_rank)
    for item in items:
        group = server_group(item.path)
        if group is not None:
            item.add_marker(pytest.mark.xdist_group(group))
            # pytest-xdist 3.8 puts a test in its group by appending "@<group>" to
            # `item._nodeid`, which pytest 9 no longer reads (a node's id is `item._id`): the
            # mark alone was silently ignored and these tests spread over both workers, out of
            # order. Give them the id xdist's scheduler groups by (it splits at the last "@").
            node_id = getattr(item, "_id", None)
            if loadgroup and node_id is not None and not item.nodeid.endswith(f"@{group}"):
                item._id = type(node_id).parse(f"{item.nodeid}@{group}")
