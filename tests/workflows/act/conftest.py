"""Fixtures for running the workflows themselves with act against the local deploy target.

The local server, deploy targets and the Pulumi CLI come from the end-to-end fixtures
(tests/e2e/conftest.py); `harness.py` makes the repository, the stack and the act runs.
Nothing here skips: a part that cannot run fails the test.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import (
    http,
    local_server,
    make_deploy_target,
    pulumi_env,
    sample_images,
)
from tests.e2e.webhook_sink import WebhookSink
from tests.workflows.act.harness import OWNER, REPOSITORY, Services, StandInWithComments

__all__ = ["http", "local_server", "make_deploy_target", "pulumi_env", "sample_images"]


@pytest.fixture(scope="module")
def work(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory for the module's repository, act's files and logs."""
    return tmp_path_factory.mktemp(request.module.__name__.rsplit(".", 1)[-1])


@pytest.fixture(scope="module")
def services(work: Path) -> Iterator[Services]:
    """The GitHub stand-in (with pull-request comments) and the Slack sink, for one module."""
    github = StandInWithComments(OWNER, REPOSITORY, token=f"ghp_act{secrets.token_hex(16)}").start()
    slack = WebhookSink(work).start()
    yield Services(github, slack, slack.url(f"/services/T0ACT/B0ACT/{secrets.token_hex(8)}"))
    github.stop()
    slack.stop()
