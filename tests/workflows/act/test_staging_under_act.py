"""The deploy workflow's staging path, run by act against the local server: one push builds the
image once on the staging stack, deploys and smoke-tests it there, then production deploys the
digest that served on staging (promote.py --check in the preview job, the pin applied by the
deploy job's `pulumi up --plan`), nothing rebuilt. Two stacks of one repository, each on its
own deploy target of the local server, one image repository (as Pulumi.staging.yaml beside
Pulumi.production.yaml). The other cases (tests/workflows/act/test_workflows_under_act.py) run
without staging (PULUMI_STAGING_STACK=none: the path a hotfix takes)."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from local.stack import MachineValues
from local.target import (
    DeployTarget,
    HttpProbe,
    LocalServer,
    create_deploy_target,
    destroy_deploy_target,
)
from tests.e2e.conftest import stack_config
from tests.workflows.act.harness import (
    DEPLOY,
    PYTEST_SELECTION,
    Repository,
    Services,
    Stack,
    make_stack,
    push_payload,
    run_act,
    runner_environment,
)

PULUMI_PLUGINS = ("command", "docker", "github")


@dataclass
class Pair:
    staging: Stack
    production: Stack
    targets: dict[str, DeployTarget]


@pytest.fixture(scope="module")
def pair(
    work: Path, pulumi_env: dict[str, str], local_server: LocalServer, services: Services
) -> Iterator[Pair]:
    targets = {
        name: create_deploy_target(local_server, f"act{name[:3]}-{secrets.token_hex(2)}")
        for name in ("staging", "production")
    }
    repository = Repository.create(work / "repo")
    values = MachineValues(
        host_key=local_server.host_public_key,
        ssh_private_key=local_server.private_key_path.read_text(),
        registry_user=local_server.registry_user,
        registry_password=local_server.registry_password,
        env_file_content=f"APP_SECRET=act-{secrets.token_hex(8)}\n",
    )
    production = make_stack(
        repository, pulumi_env, values, stack_config(local_server, targets["production"]), services
    )
    # Staging: the same image repository, and no GitHub side (the GitHub stack's, not its).
    staging = make_stack(
        repository, pulumi_env, values, stack_config(local_server, targets["staging"]), services,
        image_repository=production.image_repository, github=False,
    )  # fmt: skip
    yield Pair(staging, production, targets)
    for stack in (staging, production):
        stack.pulumi.remove()
    for target in targets.values():
        destroy_deploy_target(local_server, target)


def ledger(server: LocalServer, target: DeployTarget) -> list[dict[str, Any]]:
    text = server.ssh(f"cat {target.deploy_dir}/.deploy/releases.jsonl", check=True).stdout
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def served_version(http: HttpProbe, target: DeployTarget) -> str:
    status, body = http.get(target.health_url)
    assert status == 200, body
    return str(json.loads(body)["version"])


def test_a_push_deploys_staging_then_promotes_that_digest_to_production(
    pair: Pair,
    pulumi_env: dict[str, str],
    local_server: LocalServer,
    services: Services,
    work: Path,
    http: HttpProbe,
) -> None:
    repo = pair.production.repository
    repo.set_app("stg-1")
    message = "app: stg-1"
    sha = repo.commit(message)
    env = {
        **runner_environment(pulumi_env, services.slack.ca_bundle, work / "docker-config"),
        "GITHUB_API_URL": services.github.base_url.rstrip("/") + "/api/v3",
    }
    result = run_act(
        pair.production, "push", DEPLOY, push_payload(repo, sha, message),
        secrets_={
            "PULUMI_CONFIG_PASSPHRASE": pulumi_env["PULUMI_CONFIG_PASSPHRASE"],
            "PULUMI_GITHUB_TOKEN": services.github.token,
            "GITHUB_TOKEN": local_server.registry_password,
        },
        vars_={
            "PULUMI_BACKEND_URL": pulumi_env["PULUMI_BACKEND_URL"],
            "PYTEST_SELECTION": PYTEST_SELECTION,
            "PULUMI_STAGING_STACK": pair.staging.name,
        },
        env=env, work=work, log_name="push-staging",
    )  # fmt: skip
    expected = {
        "Lint and test": "succeeded",
        "Staging (build once, deploy, smoke test)": "succeeded",
        "Preview the deploy": "succeeded",
        "Deploy": "succeeded",
        "Smoke test": "succeeded",
        "Notify": "succeeded",
    }
    assert {job: result.job(job) for job in expected} == expected, result.log[-4000:]
    assert result.returncode == 0
    # Both serve the commit (the image reports the tag it was built for), by one digest:
    # staging's build, promoted, not rebuilt.
    assert served_version(http, pair.targets["staging"]) == sha
    assert served_version(http, pair.targets["production"]) == sha
    on_staging, on_production = (
        [e for e in ledger(local_server, pair.targets[name]) if e["event"] == "served"]
        for name in ("staging", "production")
    )
    assert on_staging[-1]["digest"] and on_production[-1]["digest"] == on_staging[-1]["digest"]
    assert on_production[-1]["image"].split("@")[0].endswith(f":{sha}")
    assert f"Promoting {sha} from {pair.staging.name}, where it served healthy" in result.log
    # The production update built nothing: the image was pushed once, by staging.
    production_up = result.log.split("Promoting", 1)[1]
    assert "app-build" not in production_up.split("Smoke test", 1)[0]
    history = pair.production.pulumi.history()
    assert history and history[0]["result"] == "succeeded"
