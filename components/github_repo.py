"""The GitHub side: what the workflows read from the repository, and the `production` environment.

Only what a workflow of this project reads is declared: the variable `PULUMI_BACKEND_URL`
(self-managed state backend), the protected `production` environment that the deploy and
rollback jobs run in, and the `production-preview` environment (main only, no reviewers) of the
preview before it and of the notify jobs. The deploy key
travels in the encrypted stack config, never in a repository secret: each copy of it is one more
place to leak it from. So do the notification secrets (`mcp:slackWebhookUrl`,
`mcp:telegramBotToken`): `oncall.py notify` reads them from the stack, so no repository secret
holds them (a stack that declared `SLACK_WEBHOOK_URL` before has it deleted by its next `up`).

The original pipeline read `HOSTINGER_SSH_KEY`, `HOSTINGER_HOST`, `HOSTINGER_USER` and
`HOSTINGER_DEPLOY_DIR`. They are declared only with `mcp:github.legacySecrets: true`, for the
time a migration from that pipeline needs them; turning it off again deletes them from GitHub.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_github as github

from components.settings import GitHubSettings, PathSettings, ServerSettings

DEPLOY_BRANCH = "main"
# The preview job's environment is the deploy environment's name with this suffix.
PREVIEW_SUFFIX = "-preview"
LEGACY_SECRET_NAMES = (
    "HOSTINGER_SSH_KEY",
    "HOSTINGER_HOST",
    "HOSTINGER_USER",
    "HOSTINGER_DEPLOY_DIR",
)


@dataclass(frozen=True)
class GitHubSetupArgs:
    github: GitHubSettings
    # Only for mcp:github.legacySecrets, in a stack that deploys a server too (the GitHub
    # stack, without mcp:server, has none).
    server: ServerSettings | None = None
    paths: PathSettings | None = None


def actions_secret_values(args: GitHubSetupArgs) -> dict[str, pulumi.Input[str]]:
    """Repository secret name -> value: what the workflows read, plus the legacy copies when
    `mcp:github.legacySecrets` is on."""
    values: dict[str, pulumi.Input[str]] = {}
    if args.github.legacy_secrets:
        assert args.server is not None and args.paths is not None
        legacy_values = (
            args.server.private_key,
            args.server.host,
            args.server.user,
            args.paths.deploy_dir,
        )
        values.update(zip(LEGACY_SECRET_NAMES, legacy_values, strict=True))
    return values


def actions_variable_values(args: GitHubSetupArgs) -> dict[str, str]:
    """Repository variable name -> value (not secret: shown in logs and the GitHub UI)."""
    values: dict[str, str] = {}
    if args.github.pulumi_backend_url is not None:
        values["PULUMI_BACKEND_URL"] = args.github.pulumi_backend_url
    return values


def _resource_suffix(name: str) -> str:
    return name.lower().replace("_", "-")


class GitHubSetup(pulumi.ComponentResource):
    """Declares the workflows' repository secrets and variables and the `production` and
    `production-preview` environments (deployments from main only)."""

    def __init__(
        self, name: str, args: GitHubSetupArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("mcp:deploy:GitHub", name, None, opts)
        settings = args.github
        # The token comes from the GITHUB_TOKEN environment variable (an admin token: see README).
        # `mcp:github.apiUrl` points the provider at another API (GHES, or the e2e tests' double).
        # At the stack's root, not under this component (aliased to where it was): then
        # `pulumi state move` can carry this component to the GitHub stack (tools/
        # move_github_side.py); Pulumi 3.259 refuses to move a provider parented to what moves.
        self.provider = github.Provider(
            f"{name}-provider",
            owner=settings.owner,
            base_url=settings.api_url,
            opts=pulumi.ResourceOptions(aliases=[pulumi.Alias(parent=self)]),
        )
        child = pulumi.ResourceOptions(parent=self, provider=self.provider)

        if settings.legacy_secrets:
            pulumi.log.warn(
                "mcp:github.legacySecrets is on: the deploy key, host, user and deploy dir are "
                f"copied into the repository secrets {', '.join(LEGACY_SECRET_NAMES)}, which no "
                "workflow of this project reads. Turn it off once the old pipeline is gone "
                "(the next `pulumi up` deletes them).",
                resource=self,
            )

        self.secrets = {
            secret_name: github.ActionsSecret(
                f"{name}-secret-{_resource_suffix(secret_name)}",
                repository=settings.repository,
                secret_name=secret_name,
                # Every value goes through Output.secret, even the non-sensitive ones, so that
                # none of them is stored in the stack state in plain text.
                value=pulumi.Output.secret(value),
                opts=child,
            )
            for secret_name, value in actions_secret_values(args).items()
        }
        self.variables = {
            variable_name: github.ActionsVariable(
                f"{name}-variable-{_resource_suffix(variable_name)}",
                repository=settings.repository,
                variable_name=variable_name,
                value=value,
                opts=child,
            )
            for variable_name, value in actions_variable_values(args).items()
        }

        reviewers = []
        if settings.reviewer_user_ids or settings.reviewer_team_ids:
            reviewers.append(
                github.RepositoryEnvironmentReviewerArgs(
                    users=list(settings.reviewer_user_ids) or None,
                    teams=list(settings.reviewer_team_ids) or None,
                )
            )
        self.environment = self._environment(
            name, "environment", settings.environment, settings, child,
            wait_timer=settings.wait_timer_minutes or None, reviewers=reviewers or None,
        )  # fmt: skip
        # `<environment>-preview` (production-preview): the deploy workflow's preview job, which
        # shows the diff against production's state before the approval gate, runs in it. It
        # holds the Pulumi secrets (set by hand, like production's) and so only lets main deploy,
        # without reviewers: the approval protects changing production, and what it approves is
        # this job's preview.
        self.preview_environment = self._environment(
            name, "preview-environment", f"{settings.environment}{PREVIEW_SUFFIX}", settings,
            child, stack=settings.environment,
        )  # fmt: skip
        # The staging deploys' environment: main only, no reviewers (staging is where a
        # version proves itself before production's approval).
        self.staging_environment = (
            self._environment(
                name, "staging-environment", settings.staging_environment, settings, child
            )
            if settings.staging_environment is not None
            else None
        )
        self.register_outputs({"environment": self.environment.environment})

    def _environment(
        self,
        name: str,
        suffix: str,
        environment: str,
        settings: GitHubSettings,
        child: pulumi.ResourceOptions,
        *,
        stack: str | None = None,
        wait_timer: int | None = None,
        reviewers: list[github.RepositoryEnvironmentReviewerArgs] | None = None,
    ) -> github.RepositoryEnvironment:
        """An environment only main deploys from, with the variable PULUMI_STACK (the stack its
        jobs deploy: `stack`, else the environment's own name)."""
        declared = github.RepositoryEnvironment(
            f"{name}-{suffix}",
            repository=settings.repository,
            environment=environment,
            wait_timer=wait_timer,
            reviewers=reviewers,
            prevent_self_review=False,
            can_admins_bypass=False,
            # "Selected branches" in the GitHub UI: only the policy below may deploy.
            deployment_branch_policy=github.RepositoryEnvironmentDeploymentBranchPolicyArgs(
                protected_branches=False,
                custom_branch_policies=True,
            ),
            opts=child,
        )
        after = pulumi.ResourceOptions(parent=self, provider=self.provider, depends_on=[declared])
        github.RepositoryEnvironmentDeploymentPolicy(
            f"{name}-{suffix}-main-only",
            repository=settings.repository,
            environment=declared.environment,
            branch_pattern=DEPLOY_BRANCH,
            opts=after,
        )
        github.ActionsEnvironmentVariable(
            f"{name}-{suffix}-variable-pulumi-stack",
            repository=settings.repository,
            environment=declared.environment,
            variable_name="PULUMI_STACK",
            value=stack or environment,
            opts=after,
        )
        return declared
