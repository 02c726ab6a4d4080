"""Runs with pytest-xdist (`-n 2 --dist loadgroup`, as tools/test.sh does). The tests that use
the local deploy target (sshd, Docker and the registry on 127.0.0.1) run in two groups, each in
one worker, in order, in one session:

* `local-server`: tests/integration and tests/e2e;
* `local-server-act`: tests/workflows/act, the workflows run by act (about a third of the
  server-bound time, one stack's history in order).

The two groups run at the same time, on the same server: every test makes its own deploy target
(its own directories, ports, compose project and stack), so they share only the daemons, the
sample images (built under a host-wide lock, local/target.py) and the toolchain (read only; act's
runs get their own PULUMI_HOME). Within a group nothing runs at the same time as anything else.
The tests that need no server (unit tests on Pulumi's mocks, scripts on stubs, workflow files)
are spread over both workers.
"""

from __future__ import annotations

from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
# The folders whose tests use the local server, and the group each runs in (in order, in one
# worker); everything else runs anywhere.
SERVER_GROUPS = {
    TESTS / "integration": "local-server",
    TESTS / "e2e": "local-server",
    TESTS / "workflows" / "act": "local-server-act",
}


def server_group(path: Path) -> str | None:
    """The xdist group of a test file that uses the local server, or None."""
    for folder, group in SERVER_GROUPS.items():
        if path.is_relative_to(folder):
            return group
    return None


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    loadgroup = bool(getattr(config.option, "loadgroup", False))  # set in xdist's workers
    # The server-bound groups first, in SERVER_GROUPS' order (each keeps its own order): xdist
    # hands out work in collection order, so each long group starts at once on a worker of its
    # own, and the short tests that need no server fill in around them.
    group_rank = {group: rank for rank, group in enumerate(dict.fromkeys(SERVER_GROUPS.values()))}
    items.sort(key=lambda item: group_rank.get(server_group(item.path) or "", len(group_rank)))
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
