"""The GitHub side of the program, on Pulumi's mocks: the secrets and variables the workflows
read, the `production` and `production-preview` environments, and the legacy HOSTINGER_* copies
(opt-in only)."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
import yaml

from components.github_repo import LEGACY_SECRET_NAMES
from tests.unit.conftest import ROOT, ProgramRun, TestKeys, base_config

Run = Callable[..., ProgramRun]
SECRET = "github:index/actionsSecret:ActionsSecret"
VARIABLE = "github:index/actionsVariable:ActionsVariable"
ENVIRONMENT = "github:index/repositoryEnvironment:RepositoryEnvironment"
POLICY = "github:index/repositoryEnvironmentDeploymentPolicy:RepositoryEnvironmentDeploymentPolicy"
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))


def github_config(test_keys: TestKeys, **github: Any) -> dict[str, Any]:
    config = base_config(test_keys)
    config["github"] = {**config["github"], **github}
    return config


def secrets_of(run: ProgramRun) -> dict[str, Any]:
    return {r.inputs["secretName"]: r for r in run.of_type(SECRET)}


def variables_of(run: ProgramRun) -> dict[str, Any]:
    return {r.inputs["variableName"]: r for r in run.of_type(VARIABLE)}


def read_by_workflows(kind: str) -> set[str]:
    """Names the workflows read as `${{ secrets.NAME }}` or `${{ vars.NAME }}`."""
    text = "\n".join(path.read_text(encoding="utf-8") for path in WORKFLOWS)
    return set(re.findall(rf"\b{kind}\.([A-Za-z_][A-Za-z0-9_]*)", text))


@pytest.fixture
def production(run_program: Run, test_keys: TestKeys) -> ProgramRun:
    return run_program(github_config(test_keys, pulumiBackendUrl="s3://mcp-state/production"))


def test_only_what_the_workflows_read_is_declared(production: ProgramRun) -> None:
    secrets = secrets_of(production)
    variables = variables_of(production)
    # No SLACK_WEBHOOK_URL: `oncall.py notify` reads the webhook from the stack itself.
    assert set(secrets) == set()
    assert set(variables) == {"PULUMI_BACKEND_URL"}
    assert set(secrets) <= read_by_workflows("secrets")
    assert set(variables) <= read_by_workflows("vars")
    assert variables["PULUMI_BACKEND_URL"].inputs["value"] == "s3://mcp-state/production"
    assert variables["PULUMI_BACKEND_URL"].inputs["repository"] == "mcp"


def test_the_deploy_key_is_copied_nowhere_by_default(
    production: ProgramRun, test_keys: TestKeys
) -> None:
    """The key travels in the encrypted stack config; no repository secret holds a copy."""
    assert not set(LEGACY_SECRET_NAMES) & set(secrets_of(production))
    key_line = test_keys.private_key.splitlines()[1]
    for resource in production.registered.values():
        if resource.type.startswith("github:"):
            assert key_line not in str(resource.inputs), resource.name


def test_no_workflow_reads_the_legacy_secrets() -> None:
    assert not set(LEGACY_SECRET_NAMES) & read_by_workflows("secrets")


def test_legacy_secrets_are_an_explicit_opt_in(run_program: Run, test_keys: TestKeys) -> None:
    run = run_program(github_config(test_keys, legacySecrets=True))
    secrets = secrets_of(run)
    assert set(secrets) == set(LEGACY_SECRET_NAMES)
    for name, secret in secrets.items():
        assert "value" in secret.secret_paths(), name
    assert secrets["HOSTINGER_HOST"].inputs["value"] == "147.79.101.32"
    assert secrets["HOSTINGER_USER"].inputs["value"] == "feustey"
    assert secrets["HOSTINGER_DEPLOY_DIR"].inputs["value"] == "/opt/mcp"
    assert secrets["HOSTINGER_SSH_KEY"].inputs["value"] == test_keys.private_key
    # The same resource names as the original program: opting in replaces nothing.
    assert run.get("github-secret-hostinger-ssh-key").inputs["secretName"] == "HOSTINGER_SSH_KEY"


@pytest.mark.parametrize("value", ["yes", "1", "TRUE-ish"])
def test_legacy_secrets_must_be_true_or_false(
    run_program: Run, test_keys: TestKeys, value: str
) -> None:
    with pytest.raises(Exception, match=r"mcp:github\.legacySecrets: must be true or false"):
        run_program(github_config(test_keys, legacySecrets=value))


@pytest.mark.parametrize(
    "url", ["https://user:password@example.com/state", "s3://bucket/a b", "s3://b\n"]
)
def test_backend_url_variable_refuses_credentials_and_junk(
    run_program: Run, test_keys: TestKeys, url: str
) -> None:
    with pytest.raises(Exception, match=r"mcp:github\.pulumiBackendUrl: must be"):
        run_program(github_config(test_keys, pulumiBackendUrl=url))


def test_no_secret_or_variable_without_a_backend_url(run_program: Run, test_keys: TestKeys) -> None:
    config = base_config(test_keys)
    config.pop("slackWebhookUrl")
    run = run_program(config)
    assert not run.of_type(SECRET)
    assert not run.of_type(VARIABLE)
    assert not [r for r in run.of_type("command:local:Command") if "slack" in r.name]


def test_production_environment_only_allows_main(production: ProgramRun) -> None:
    environment = production.get("github-environment")
    assert environment.inputs["environment"] == "production"
    assert environment.inputs["deploymentBranchPolicy"] == {
        "customBranchPolicies": True,
        "protectedBranches": False,
    }
    assert environment.inputs["waitTimer"] == 5
    assert environment.inputs["reviewers"] == [{"users": [1234567]}]
    policy = production.get("github-environment-main-only")
    assert policy.inputs["branchPattern"] == "main"
    assert policy.inputs["environment"] == "production"
    assert "tagPattern" not in policy.inputs


def test_the_preview_environment_only_allows_main_and_has_no_reviewers(
    production: ProgramRun,
) -> None:
    """The deploy workflow's preview job (the diff against production's state, before the
    approval) runs in `production-preview`: it holds the Pulumi secrets, so main only."""
    environment = production.get("github-preview-environment")
    assert environment.inputs["environment"] == "production-preview"
    assert environment.inputs["deploymentBranchPolicy"] == {
        "customBranchPolicies": True,
        "protectedBranches": False,
    }
    assert "reviewers" not in environment.inputs and "waitTimer" not in environment.inputs
    assert environment.inputs["canAdminsBypass"] is False
    policy = production.get("github-preview-environment-main-only")
    assert policy.inputs["branchPattern"] == "main"
    assert policy.inputs["environment"] == "production-preview"
    assert len(production.of_type(ENVIRONMENT)) == 2 and len(production.of_type(POLICY)) == 2


def test_the_environments_are_the_ones_the_workflows_run_in(run_program: Run) -> None:
    """The committed GitHub stack (Pulumi.github.yaml) declares exactly the environments the
    workflows' jobs run in."""
    run = run_program(github_stack_config())
    declared = {e.inputs["environment"] for e in run.of_type(ENVIRONMENT)}
    used = set()
    for path in WORKFLOWS:
        for job in yaml.safe_load(path.read_text(encoding="utf-8"))["jobs"].values():
            env = job.get("environment")
            if env is not None:
                used.add(env["name"] if isinstance(env, dict) else env)
    assert used == declared == {"production", "production-preview", "staging"}


def test_github_resources_use_an_explicit_provider_for_the_owner(production: ProgramRun) -> None:
    (provider,) = production.of_type("pulumi:providers:github")
    assert provider.inputs["owner"] == "feustey"
    for resource in production.registered.values():
        if resource.type.startswith("github:"):
            assert resource.parent.endswith("::github"), resource.name


def test_no_github_resources_without_github_config(run_program: Run, test_keys: TestKeys) -> None:
    config = base_config(test_keys)
    config.pop("github")
    run = run_program(config)
    assert not [r for r in run.registered.values() if r.type.startswith("github:")]


# --- the GitHub stack (Pulumi.github.yaml): mcp:github without mcp:server -------------------

ENVIRONMENT_VARIABLE = "github:index/actionsEnvironmentVariable:ActionsEnvironmentVariable"


def github_stack_config() -> dict[str, Any]:
    raw = yaml.safe_load((ROOT / "Pulumi.github.yaml").read_text())["config"]
    return {key.removeprefix("mcp:"): value for key, value in raw.items()}


def test_the_github_stack_declares_the_environments_and_nothing_on_a_server(
    run_program: Run,
) -> None:
    run = run_program(github_stack_config())
    assert not [r for r in run.registered.values() if r.type.startswith("command:")]
    assert not [r for r in run.registered.values() if r.type.startswith("docker")]
    environments = {r.inputs["environment"]: r for r in run.of_type(ENVIRONMENT)}
    assert set(environments) == {"production", "production-preview", "staging"}
    for name, environment in environments.items():
        policy = environment.inputs["deploymentBranchPolicy"]
        assert policy == {"customBranchPolicies": True, "protectedBranches": False}, name
    assert {r.inputs["environment"] for r in run.of_type(POLICY)} == set(environments)
    # Each environment's jobs deploy the stack its PULUMI_STACK names (the preview: production).
    stacks = {
        r.inputs["environment"]: r.inputs["value"]
        for r in run.of_type(ENVIRONMENT_VARIABLE)
        if r.inputs["variableName"] == "PULUMI_STACK"
    }
    assert stacks == {
        "production": "production",
        "production-preview": "production",
        "staging": "staging",
    }
    assert "PULUMI_STACK" in read_by_workflows("vars")
    assert secrets_of(run) == {}


def test_the_production_and_staging_stacks_declare_nothing_on_github() -> None:
    for stack in ("production", "staging"):
        config = yaml.safe_load((ROOT / f"Pulumi.{stack}.yaml").read_text())["config"]
        assert "mcp:github" not in config, stack


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"paths": {"deployDir": "/opt/mcp"}}, "mcp:paths belong in a server stack"),
        ({"slackWebhookUrl": "https://hooks.example.invalid/x"}, "belong in a server stack"),
        ({"github": {"legacySecrets": True}}, "mcp:github.legacySecrets: copies the server's"),
        ({"github": {"stagingEnvironment": "production"}}, "must differ from github.environment"),
    ],
    ids=["server-key", "notification-key", "legacy-secrets", "same-environment"],
)
def test_the_github_stack_refuses_what_belongs_to_a_server_stack(
    extra: dict[str, Any], message: str
) -> None:
    from components.settings import ConfigError, is_github_stack, load_github_stack_settings
    from tests.unit.test_settings import DictSource

    config = github_stack_config()
    for key, value in extra.items():
        config[key] = {**config[key], **value} if key in config else value
    source = DictSource(config)
    assert is_github_stack(source)
    with pytest.raises(ConfigError, match=message):
        load_github_stack_settings(source)
