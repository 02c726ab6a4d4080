"""The GitHub stack (`mcp:github` without `mcp:server`, as Pulumi.github.yaml) through the real
`pulumi-resource-github` plugin against the GitHub stand-in on loopback
(`tests/e2e/github_standin.py`: not GitHub): it declares the three environments with their
PULUMI_STACK variables; and with the stand-in answering 500 to everything (a GitHub outage), the
GitHub stack's update fails while an emergency rollback of a production stack completes."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import pytest
import yaml

from local.stack import PulumiStack
from tests.e2e.github_standin import GitHubStandIn
from tests.e2e.test_rollback import rollback

if TYPE_CHECKING:
    from local.target import HttpProbe
    from tests.e2e.conftest import E2EStack

OWNER, REPOSITORY = "feustey-e2e", "mcp"
PULUMI_PLUGINS = ("github",)


@pytest.fixture
def github_api() -> Iterator[GitHubStandIn]:
    standin = GitHubStandIn(OWNER, REPOSITORY, token=f"ghp_e2e{secrets.token_hex(16)}").start()
    yield standin
    standin.stop()


@pytest.fixture
def github_stack(pulumi_env: dict[str, str], github_api: GitHubStandIn) -> Iterator[PulumiStack]:
    """Pulumi.github.yaml's config, aimed at the stand-in: no server key at all."""
    stack = PulumiStack(f"e2e-github-{secrets.token_hex(3)}", env=dict(pulumi_env))
    stack.env["GITHUB_TOKEN"] = github_api.token
    committed = yaml.safe_load((stack.cwd / "Pulumi.github.yaml").read_text())["config"]
    config = {"mcp:github": {**committed["mcp:github"], "owner": OWNER, "repository": REPOSITORY,
                             "apiUrl": github_api.base_url}}  # fmt: skip
    stack.stack_file.write_text(
        yaml.safe_dump({"secretsprovider": "passphrase", "config": config}, sort_keys=False)
    )
    stack.ensure_in_backend()
    yield stack
    stack.remove()


def test_the_github_stack_declares_each_environment_and_an_outage_blocks_no_rollback(
    github_stack: PulumiStack,
    github_api: GitHubStandIn,
    make_stack: Callable[..., E2EStack],
    http: HttpProbe,
) -> None:
    github_stack.up()
    assert sorted(github_api.environments) == ["production", "production-preview", "staging"]
    stacks = {name: env.variables["PULUMI_STACK"]["value"]
              for name, env in github_api.environments.items()}  # fmt: skip
    assert stacks == {
        "production": "production",
        "production-preview": "production",
        "staging": "staging",
    }
    for environment in github_api.environments.values():
        assert list(environment.policies.values()) == [{"name": "main", "type": "branch"}]
    assert github_api.unhandled == []
    writes = len(github_api.writes())
    github_stack.up()
    assert len(github_api.writes()) == writes  # a second up changes nothing on GitHub

    # A production stack as committed: no GitHub resource. v1, then v2.
    production = make_stack("prod-no-github")
    production.up()
    production.set_tag("v2")
    production.up()
    assert production.served_version(http) == "v2"

    # GitHub is down: the GitHub stack's update fails, naming the error...
    github_api.outage = 500
    failed = github_stack.up(check=False)
    assert failed.returncode != 0 and "500" in failed.stdout + failed.stderr, failed.stdout
    # ...and the emergency rollback of production completes, never calling GitHub.
    requests = len(github_api.requests)
    back = rollback(production, "--last-good", "--reason", "incident during a GitHub outage")
    assert back.returncode == 0, back.stdout + back.stderr
    assert production.served_version(http) == "v1"
    assert len(github_api.requests) == requests
