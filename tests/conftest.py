"""Runs with pytest-xdist (`-n 2 --dist loadgroup`, as tools/test.sh does): the tests that use
the local deploy target (sshd, Docker and the registry on 127.0.0.1) stay together, in one
worker, in one session, as when the suite runs serially: they share its session fixtures (the
server, the sample images, the Pulumi toolchain) and never run at the same time as each other.
The tests that need no server (unit tests on Pulumi's mocks, scripts on stubs, workflow files)
are spread over the other workers."""

from __future__ import annotations

from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
# The folders whose tests use the local server; everything else runs anywhere.
SERVER_BOUND = (TESTS / "integration", TESTS / "e2e", TESTS / "workflows" / "act")


GROUP = "local-server"


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    loadgroup = bool(getattr(config.option, "loadgroup", False))  # set in xdist's workers
    for item in items:
        if any(item.path.is_relative_to(folder) for folder in SERVER_BOUND):
            item.add_marker(pytest.mark.xdist_group(GROUP))
            # pytest-xdist 3.8 puts a test in its group by appending "@<group>" to
            # `item._nodeid`, which pytest 9 no longer reads (a node's id is `item._id`): the
            # mark alone was silently ignored and these tests spread over both workers, out of
            # order. Give them the id xdist's scheduler groups by (it splits at the last "@").
            node_id = getattr(item, "_id", None)
            if loadgroup and node_id is not None and not item.nodeid.endswith(f"@{GROUP}"):
                item._id = type(node_id).parse(f"{item.nodeid}@{GROUP}")
