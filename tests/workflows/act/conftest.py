"""Fixtures for running the workflows themselves with act against the local deploy target.

The local server, deploy targets and the Pulumi CLI come from the end-to-end fixtures
(tests/e2e/conftest.py); `harness.py` makes the repository, the stack and the act runs.
Nothing here skips: a part that cannot run fails the test.
"""

from __future__ import annotations

from tests.e2e.conftest import (
    http,
    local_server,
    make_deploy_target,
    pulumi_env,
    sample_images,
)

__all__ = ["http", "local_server", "make_deploy_target", "pulumi_env", "sample_images"]
