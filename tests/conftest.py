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


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if any(item.path.is_relative_to(folder) for folder in SERVER_BOUND):
            item.add_marker(pytest.mark.xdist_group("local-server"))
