"""Fixtures for tests against the disposable local deploy target (`local/server.sh`).

* `local_server` (session): runs `local/server.sh up` and describes the target.
* `sample_images` / `proxy_image` (session): images built and pushed to the local registry.
* `make_deploy_target`: creates fresh deploy + backup directories for one test, as the
  deploy user, and removes them (and their compose project) afterwards.
* `http`: plain HTTP probes from the test host.

The logic lives in `local/target.py` (shared with the e2e tests and the benchmark); these
fixtures turn its errors into test failures. The tests need root and the packages of
`local/server.sh install`; when something is missing they fail with the reason, never skip.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from local.target import (  # re-exported: the tests import these names from conftest
    APP_DIR,
    APP_SECRET_LINE,
    BUILD_SH,
    COMPOSE_FILE,
    ENV_FILE,
    PROXY_BUILD_SH,
    PROXY_REPOSITORY,
    PROXY_TAG,
    ROOT,
    SAMPLE_COMPOSE,
    SAMPLE_IMAGES,
    SAMPLE_REPOSITORY,
    SERVER_SH,
    SERVICE,
    DeployTarget,
    HttpProbe,
    LocalServer,
    _docker_login_root,
    create_deploy_target,
    destroy_deploy_target,
    ensure_proxy_image,
    ensure_sample_images,
    free_port,
    parse_env_lines,
    registry_image_labels,
    start_local_server,
)

__all__ = [
    "APP_DIR",
    "APP_SECRET_LINE",
    "BUILD_SH",
    "COMPOSE_FILE",
    "ENV_FILE",
    "PROXY_BUILD_SH",
    "PROXY_REPOSITORY",
    "PROXY_TAG",
    "ROOT",
    "SAMPLE_COMPOSE",
    "SAMPLE_IMAGES",
    "SAMPLE_REPOSITORY",
    "SERVER_SH",
    "SERVICE",
    "DeployTarget",
    "HttpProbe",
    "LocalServer",
    "_docker_login_root",
    "create_deploy_target",
    "destroy_deploy_target",
    "free_port",
    "parse_env_lines",
    "registry_image_labels",
]


@pytest.fixture(scope="session")
def local_server() -> LocalServer:
    """`local/server.sh up` (fails with its output when that fails) + its `env`."""
    try:
        return start_local_server()
    except RuntimeError as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture(scope="session")
def sample_images(local_server: LocalServer) -> dict[str, str]:
    """Sample app images in the local registry: name -> image ref (see ensure_sample_images)."""
    try:
        return ensure_sample_images(local_server)
    except RuntimeError as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture(scope="session")
def proxy_image(local_server: LocalServer) -> str:
    """The blue-green proxy image in the local registry (see ensure_proxy_image)."""
    try:
        return ensure_proxy_image(local_server)
    except RuntimeError as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture(scope="session")
def stock_layout_proxy_image(local_server: LocalServer) -> str:
    """The stand-in for the official caddy image (no launcher, caddy on PATH; see
    ensure_proxy_image): the official one cannot be pulled here."""
    try:
        return ensure_proxy_image(local_server, stock_layout=True)
    except RuntimeError as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture
def make_deploy_target(local_server: LocalServer) -> Iterator[Callable[..., DeployTarget]]:
    """Factory: `make_deploy_target(name)` (or `make_deploy_target(local_server, name)`).

    Every target made is torn down after the test (compose down, directories removed).
    """
    made: list[DeployTarget] = []

    def make(*args: Any) -> DeployTarget:
        if len(args) == 1:
            server, name = local_server, args[0]
        elif len(args) == 2:
            server, name = args
        else:
            raise TypeError("make_deploy_target(name) or make_deploy_target(local_server, name)")
        target = create_deploy_target(server, str(name))
        made.append(target)
        return target

    yield make
    for target in reversed(made):
        destroy_deploy_target(local_server, target)


@pytest.fixture(scope="session")
def http() -> HttpProbe:
    return HttpProbe()
