"""The GitHub stack (`mcp:github` without `mcp:server`, as Pulumi.github.yaml) through the real
`pulumi-resource-github` plugin against the GitHub stand-in on loopback
(`tests/e2e/github_standin.py`: not GitHub): it declares the three environments with their
PULUMI_STACK variables; and with the stand-in answering 500 to everything (a GitHub outage), the
GitHub stack's update fails while an emergency rollback of a production stack completes."""

from __future__ import annotations

import secrets
import subprocess
import sys
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import pytest
import yaml

from local.stack import PulumiStack
from tests.e2e.conftest import ROOT
from tests.e2e.github_standin import GitHubStandIn
from tests.e2e.pulumi_output import changes_besides_script_copies
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


def github_config(github_api: GitHubStandIn) -> dict[str, object]:
    """Pulumi.github.yaml's mcp:github, aimed at the stand-in."""
    committed = yaml.safe_load((ROOT / "Pulumi.github.yaml").read_text())["config"]
    return {**committed["mcp:github"], "owner": OWNER, "repository": REPOSITORY,
            "apiUrl": github_api.base_url}  # fmt: skip


@pytest.fixture
def github_stack(pulumi_env: dict[str, str], github_api: GitHubStandIn) -> Iterator[PulumiStack]:
    """The GitHub stack: Pulumi.github.yaml's config, aimed at the stand-in; no server key."""
    stack = PulumiStack(f"e2e-github-{secrets.token_hex(3)}", env=dict(pulumi_env))
    stack.env["GITHUB_TOKEN"] = github_api.token
    config = {"mcp:github": github_config(github_api)}
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


def test_moving_the_github_side_out_of_a_production_stack_changes_nothing_on_github(
    github_stack: PulumiStack, github_api: GitHubStandIn, make_stack: Callable[..., E2EStack]
) -> None:
    """A production stack made before the split (server and mcp:github in one stack): its
    GitHub side moves to the GitHub stack with tools/move_github_side.py (pulumi state move);
    then neither stack's preview nor up changes anything on GitHub."""
    before = make_stack("before-split", config={"mcp:github": github_config(github_api)})
    before.stack.env["GITHUB_TOKEN"] = github_api.token
    first = before.up()
    assert "Move it to a GitHub stack of its own" in first.stdout + first.stderr
    environments = sorted(github_api.environments)
    assert environments == ["production", "production-preview", "staging"]
    writes = len(github_api.writes())

    moved = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "move_github_side.py"),
         "--from", before.stack.name, "--to", github_stack.name],
        cwd=ROOT, env=before.stack.env, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert moved.returncode == 0, moved.stdout + moved.stderr
    for stack in (github_stack, before.stack):
        preview = stack.preview()
        assert changes_besides_script_copies(preview.stdout) == [], (stack.name, preview.stdout)
    github_stack.up()
    again = before.up()
    assert "Move it to a GitHub stack" not in again.stdout + again.stderr
    assert len(github_api.writes()) == writes, github_api.writes()[writes:]
    assert sorted(github_api.environments) == environments
    assert github_api.unhandled == []
