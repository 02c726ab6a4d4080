"""The GitHub side through the real `pulumi-resource-github` plugin, against a test double of
GitHub's REST API on loopback (`tests/e2e/github_standin.py`, the provider's `base_url` through
`mcp:github.apiUrl`).

The double decrypts what the provider sealed to its public key, so a test compares the secret
values GitHub would store with the stack's (here the legacy `HOSTINGER_*` copies, the only
repository secrets the program can declare). The stack's Slack webhook (`mcp:slackWebhookUrl`)
points at an HTTPS sink on loopback (`tests/e2e/webhook_sink.py`, a stand-in for Slack): the
program neither copies it into a repository secret nor posts to it (`oncall.py notify` does,
after the workflow's smoke test: tests/e2e/test_notify.py).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.e2e.github_standin import GitHubStandIn
from tests.e2e.pulumi_output import changed_resources, changes_besides_script_copies
from tests.e2e.webhook_sink import WebhookSink

if TYPE_CHECKING:
    from local.target import HttpProbe
    from tests.e2e.conftest import E2EStack

OWNER, REPOSITORY = "feustey-e2e", "mcp"
# The session's toolchain builds this plugin only for these tests (tests/e2e/conftest.py).
PULUMI_PLUGINS = ("github",)
REVIEWER_ID = 1234567
BACKEND_URL = "s3://mcp-pulumi-state/e2e"


@pytest.fixture
def github_api() -> Iterator[GitHubStandIn]:
    standin = GitHubStandIn(OWNER, REPOSITORY, token=f"ghp_e2e{secrets.token_hex(16)}").start()
    yield standin
    standin.stop()


@pytest.fixture
def slack(tmp_path: Path) -> Iterator[WebhookSink]:
    sink = WebhookSink(tmp_path).start()
    yield sink
    sink.stop()


def webhook(slack: WebhookSink) -> str:
    return slack.url(f"/services/T0E2E/B0E2E/{secrets.token_hex(12)}")


def make_github_stack(
    make_stack: Callable[..., E2EStack],
    github_api: GitHubStandIn,
    slack: WebhookSink,
    name: str,
    *,
    repository: str = REPOSITORY,
    token: str | None = None,
) -> tuple[E2EStack, str]:
    """A stack deploying v1 with the GitHub component aimed at the double; its webhook URL."""
    e2e = make_stack(
        name,
        config={
            "mcp:github": {
                "owner": OWNER,
                "repository": repository,
                "apiUrl": github_api.base_url,
                "reviewerUserIds": [REVIEWER_ID],
                "pulumiBackendUrl": BACKEND_URL,
            },
        },
    )
    url = webhook(slack)
    e2e.stack.set_config("mcp:slackWebhookUrl", url, secret=True)
    e2e.stack.env["GITHUB_TOKEN"] = token or github_api.token
    e2e.stack.env["CURL_CA_BUNDLE"] = str(slack.ca_bundle)
    e2e.secret_values += [url, github_api.token]
    return e2e, url


def assert_no_plain_secret(e2e: E2EStack) -> None:
    export = e2e.stack.export()
    for value in e2e.secret_values:
        assert value not in export, "a secret is in the stack state in plain text"
        for text in e2e.stack.log:
            assert value not in text, "a secret is in the pulumi output in plain text"


def test_declares_exactly_the_secrets_and_environment_then_changes_only_what_changed(
    make_stack: Callable[..., E2EStack], github_api: GitHubStandIn, slack: WebhookSink
) -> None:
    e2e, url = make_github_stack(make_stack, github_api, slack, "github")

    # Preview: the plan, and nothing written on GitHub (the provider only looks the owner up).
    preview = e2e.stack.preview()
    planned = changed_resources(preview.stdout)
    assert "github-secret" not in planned, preview.stdout
    for resource in (
        "github-variable-pulumi-backend-url",
        "github-environment",
        "github-environment-main-only",
        "github-preview-environment",
        "github-preview-environment-main-only",
    ):
        assert f"+ {resource}" in planned, preview.stdout
    assert github_api.writes() == []
    assert not (e2e.target.deploy_dir / ".deploy").exists()

    # Up: exactly what the program declares; the webhook stays in the stack (no secret).
    e2e.up()
    assert github_api.secrets == {}
    assert {name: v["value"] for name, v in github_api.variables.items()} == {
        "PULUMI_BACKEND_URL": BACKEND_URL
    }
    assert sorted(github_api.environments) == ["production", "production-preview"]
    preview_environment = github_api.environments["production-preview"]
    assert list(preview_environment.policies.values()) == [{"name": "main", "type": "branch"}]
    assert preview_environment.reviewers == []
    production = github_api.environments["production"]
    assert production.branch_policy == {"protected_branches": False, "custom_branch_policies": True}
    assert list(production.policies.values()) == [{"name": "main", "type": "branch"}]
    assert production.reviewers == [{"type": "User", "id": REVIEWER_ID}]
    assert production.can_admins_bypass is False
    assert github_api.unhandled == []
    assert slack.posts == []  # the program posts nothing (it would before the smoke test)
    history = e2e.history_log()

    # A second up: nothing written on GitHub, nothing run on the server, no message.
    writes_before = len(github_api.writes())
    proc = e2e.up()
    assert changes_besides_script_copies(proc.stdout) == [], proc.stdout
    assert len(github_api.writes()) == writes_before
    assert e2e.history_log() == history
    assert slack.posts == []

    # The legacy copies, opted in: exactly those four secrets, sealed to the repository's key;
    # then opted out: exactly those deleted. GitHub only: nothing runs on the server.
    e2e.stack.set_config("mcp:github.legacySecrets", "true")
    proc = e2e.up()
    new_writes = github_api.writes()[writes_before:]
    names = ["HOSTINGER_DEPLOY_DIR", "HOSTINGER_HOST", "HOSTINGER_SSH_KEY", "HOSTINGER_USER"]
    secret_path = f"/api/v3/repos/{OWNER}/{REPOSITORY}/actions/secrets/"
    assert sorted((w.method, w.path) for w in new_writes) == [
        ("PUT", secret_path + name) for name in names
    ], new_writes
    assert github_api.decrypt("HOSTINGER_DEPLOY_DIR") == str(e2e.target.deploy_dir)
    key = e2e.server.private_key_path.read_text()
    assert github_api.decrypt("HOSTINGER_SSH_KEY").strip() == key.strip()
    assert key.splitlines()[1] not in github_api.secrets["HOSTINGER_SSH_KEY"].encrypted_value
    e2e.stack.set_config("mcp:github.legacySecrets", "false")
    writes_before = len(github_api.writes())
    e2e.up()
    deleted = github_api.writes()[writes_before:]
    assert sorted((w.method, w.path) for w in deleted) == [
        ("DELETE", secret_path + name) for name in names
    ], deleted
    assert github_api.secrets == {}
    assert e2e.history_log() == history, "a GitHub secret change ran a step on the server"
    assert slack.posts == [] and url and github_api.unhandled == []

    assert_no_plain_secret(e2e)


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("bad-token", ["401", "Bad credentials", f"/orgs/{OWNER}"]),
        ("missing-repository", ["404", f"/repos/{OWNER}/no-such-repo"]),
    ],
)
def test_an_api_error_fails_clearly_and_writes_nothing_on_github(
    make_stack: Callable[..., E2EStack],
    github_api: GitHubStandIn,
    slack: WebhookSink,
    http: HttpProbe,
    case: str,
    expected: list[str],
) -> None:
    """In a stack that still declares the GitHub side beside its server, nothing on the server
    waits for GitHub (an outage must not block a deploy: the GitHub stack is where it belongs):
    the update fails naming the API's answer, nothing is written on GitHub, and the server is
    either untouched (the engine stopped before its steps) or serves the release whole."""
    e2e, _ = make_github_stack(
        make_stack,
        github_api,
        slack,
        case,
        repository="no-such-repo" if case == "missing-repository" else REPOSITORY,
        token=f"ghp_revoked{secrets.token_hex(16)}" if case == "bad-token" else None,
    )

    proc = e2e.up(check=False)

    output = proc.stdout + proc.stderr
    assert proc.returncode != 0, output
    for fragment in expected:
        assert fragment in output, output
    assert github_api.secrets == {} and github_api.environments == {}
    assert github_api.variables == {}
    if (e2e.target.deploy_dir / ".deploy" / "releases.jsonl").exists():
        assert e2e.served_version(http) == "v1", "the server was touched and serves nothing"
    else:
        assert list(e2e.target.backup_dir.iterdir()) == []
    assert slack.posts == []
    assert_no_plain_secret(e2e)
