"""The GitHub side: the workflows' Actions secrets and the protected `production` environment."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_github as github

from components.settings import GitHubSettings, PathSettings, ServerSettings

DEPLOY_BRANCH = "main"


@dataclass(frozen=True)
class GitHubSetupArgs:
    github: GitHubSettings
    server: ServerSettings
    paths: PathSettings
    slack_webhook_url: pulumi.Output[str] | None


def actions_secret_values(args: GitHubSetupArgs) -> dict[str, pulumi.Input[str]]:
    """Secret name -> value, as the workflows (and the seed's manual steps) expect them."""
    values: dict[str, pulumi.Input[str]] = {
        "HOSTINGER_SSH_KEY": args.server.private_key,
        "HOSTINGER_HOST": args.server.host,
        "HOSTINGER_USER": args.server.user,
        "HOSTINGER_DEPLOY_DIR": args.paths.deploy_dir,
    }
    if args.slack_webhook_url is not None:
        values["SLACK_WEBHOOK_URL"] = args.slack_webhook_url
    return values


class GitHubSetup(pulumi.ComponentResource):
    """Declares repository Actions secrets and the `production` environment (main only)."""

    def __init__(
        self, name: str, args: GitHubSetupArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("mcp:deploy:GitHub", name, None, opts)
        settings = args.github
        # The token comes from the GITHUB_TOKEN environment variable (an admin token: see README).
        self.provider = github.Provider(
            f"{name}-provider", owner=settings.owner, opts=pulumi.ResourceOptions(parent=self)
        )
        child = pulumi.ResourceOptions(parent=self, provider=self.provider)

        self.secrets = {
            secret_name: github.ActionsSecret(
                f"{name}-secret-{secret_name.lower().replace('_', '-')}",
                repository=settings.repository,
                secret_name=secret_name,
                # Every value goes through Output.secret, even the non-sensitive ones, so that
                # none of them is stored in the stack state in plain text.
                plaintext_value=pulumi.Output.secret(value),
                opts=child,
            )
            for secret_name, value in actions_secret_values(args).items()
        }

        reviewers = []
        if settings.reviewer_user_ids or settings.reviewer_team_ids:
            reviewers.append(
                github.RepositoryEnvironmentReviewerArgs(
                    users=list(settings.reviewer_user_ids) or None,
                    teams=list(settings.reviewer_team_ids) or None,
                )
            )
        self.environment = github.RepositoryEnvironment(
            f"{name}-environment",
            repository=settings.repository,
            environment=settings.environment,
            wait_timer=settings.wait_timer_minutes or None,
            reviewers=reviewers or None,
            prevent_self_review=False,
            can_admins_bypass=False,
            # "Selected branches" in the GitHub UI: only the policies below may deploy.
            deployment_branch_policy=github.RepositoryEnvironmentDeploymentBranchPolicyArgs(
                protected_branches=False,
                custom_branch_policies=True,
            ),
            opts=child,
        )
        self.branch_policy = github.RepositoryEnvironmentDeploymentPolicy(
            f"{name}-environment-main-only",
            repository=settings.repository,
            environment=self.environment.environment,
            branch_pattern=DEPLOY_BRANCH,
            opts=pulumi.ResourceOptions(
                parent=self, provider=self.provider, depends_on=[self.environment]
            ),
        )
        self.register_outputs({"environment": self.environment.environment})
