"""The application image: built from the app's Dockerfile, tagged by commit and `latest`, pushed.

When `image.build` is false (a rollback to an existing tag, or the local stack), nothing is built
or pushed: the component only names the existing tag, so a redeploy of an earlier image can never
rebuild it from today's sources.

`image.prepare` (optional) is a command run on this machine before the build, every time the
program runs (`preview` too: pulumi-docker hashes the build context to decide whether anything
changed). It writes the build context, e.g. the static binary of a `FROM scratch` Dockerfile, so
that the build pulls no base image. It must be reproducible: the same sources must give the same
files, or every `pulumi up` would rebuild.
"""

from __future__ import annotations

import shlex
import subprocess
from pathlib import Path

import pulumi
from pulumi_command import local

from components.plan import tree_sha256
from components.settings import ImageSettings

PREPARE_TIMEOUT_S = 600
LOOPBACK_HOSTS = ("localhost", "[::1]")


def registry_api_address(registry: str) -> str:
    """The registry's address for the `latest` push's digest lookup (the bridged
    `docker.RegistryImage` speaks HTTPS unless told `http://`). Docker's own rule: a registry on
    loopback (127.0.0.0/8, localhost, ::1) is plain HTTP, like the local stand-in for GHCR;
    every other one is HTTPS."""
    host = registry.rsplit(":", 1)[0] if not registry.endswith("]") else registry
    if host in LOOPBACK_HOSTS or host.startswith("127."):
        return f"http://{registry}"
    return registry


def run_prepare(command: tuple[str, ...], context: str, dockerfile: str) -> None:
    """Runs `image.prepare` and checks it left `<context>/<dockerfile>`; fails naming both."""
    shown = " ".join(command)
    try:
        proc = subprocess.run(
            list(command),
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            timeout=PREPARE_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise pulumi.RunError(f"mcp:image.prepare `{shown}` could not run: {exc}") from exc
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-20:])
        raise pulumi.RunError(
            f"mcp:image.prepare `{shown}` exited {proc.returncode}; nothing was built or "
            f"deployed. Its output:\n{tail}"
        )
    if not (Path(context) / dockerfile).is_file():
        raise pulumi.RunError(
            f"mcp:image.prepare `{shown}` succeeded but {dockerfile!r} is not in "
            f"{context!r} (mcp:image.context): make the command write the build context there"
        )


# Run by `up` before the build: a docker login with the push credentials that fails naming the
# registry (relative to the Pulumi project, where the engine runs local commands).
PUSH_LOGIN_CHECK = "bash components/scripts/push-login-check.sh"
# Run by `up` before the build, again when the tag or the context changes: refuses a tag that is
# already in the registry, so a pushed tag never gets other content.
TAG_GUARD = "bash components/scripts/tag-guard.sh"
# Run by `up` after the build when no push user is set: `docker push <name>:latest` with the
# credentials of the `docker login` made before `pulumi up`.
PUSH_LATEST = "bash components/scripts/push-latest.sh"


def digest_pinned(tagged_reference: str, repo_digest: str) -> str:
    """`ghcr.io/o/mcp:abc` + `ghcr.io/o/mcp@sha256:…` -> `ghcr.io/o/mcp:abc@sha256:…`."""
    if "@" not in repo_digest:
        raise ValueError(f"registry returned no digest for {tagged_reference}: {repo_digest!r}")
    return f"{tagged_reference}@{repo_digest.split('@', 1)[1]}"


class AppImage(pulumi.ComponentResource):
    """Builds and pushes the image, or refers to an existing tag without building."""

    reference: pulumi.Output[str]
    built: bool

    def __init__(
        self, name: str, settings: ImageSettings, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("mcp:deploy:Image", name, None, opts)
        self.built = settings.build
        if settings.build:
            self.reference = self._build_and_push(name, settings)
        else:
            self.reference = pulumi.Output.from_input(settings.reference)
        self.register_outputs({"reference": self.reference})

    def _build_and_push(self, name: str, settings: ImageSettings) -> pulumi.Output[str]:
        # Imported here: a stack that builds nothing never loads pulumi-docker (~0.3 s per
        # program run, and `pulumi up` runs the program twice: preview, then update).
        import pulumi_docker as docker

        if settings.prepare:
            run_prepare(settings.prepare, settings.context, settings.dockerfile)
        push_user, push_password = settings.push_user, settings.push_password
        build_waits_for: list[pulumi.Resource] = []
        if push_user and push_password is not None:
            self.push_login = local.Command(
                f"{name}-push-login",
                create=PUSH_LOGIN_CHECK,
                environment={"MCP_REGISTRY": settings.registry, "MCP_PUSH_USER": push_user},
                stdin=push_password,
                # Checked again for every new image: a token may have expired since.
                triggers=[settings.reference],
                opts=pulumi.ResourceOptions(parent=self),
            )
            build_waits_for.append(self.push_login)
        with_login = bool(push_user) and push_password is not None
        guard_words = [settings.reference, *([push_user] if with_login and push_user else [])]
        self.tag_guard = local.Command(
            f"{name}-tag-guard",
            create=f"{TAG_GUARD} {shlex.join(guard_words)}",
            stdin=push_password if with_login else None,
            # Again for a new tag, and for new sources under the same tag (which it refuses).
            triggers=[settings.reference, tree_sha256(Path(settings.context))],
            opts=pulumi.ResourceOptions(parent=self, depends_on=build_waits_for),
        )
        build_waits_for = [self.tag_guard]
        registry = docker.RegistryArgs(
            server=settings.registry,
            username=push_user,
            password=push_password,
        )
        image = docker.Image(
            f"{name}-build",
            image_name=settings.reference,
            build=docker.DockerBuildArgs(
                context=settings.context,
                dockerfile=f"{settings.context}/{settings.dockerfile}",
                platform="linux/amd64",
                args={"VERSION": settings.tag},
            ),
            registry=registry,
            opts=pulumi.ResourceOptions(parent=self, depends_on=build_waits_for),
        )
        latest = docker.Tag(
            f"{name}-tag-latest",
            source_image=image.repo_digest,
            target_image=f"{settings.name}:latest",
            opts=pulumi.ResourceOptions(parent=self),
        )
        if with_login and push_user and push_password is not None:
            docker.RegistryImage(
                f"{name}-push-latest",
                name=latest.target_image,
                triggers={"digest": image.repo_digest},
                keep_remotely=True,
                auth_config=docker.RegistryImageAuthConfigArgs(
                    address=registry_api_address(settings.registry),
                    username=push_user,
                    password=push_password,
                ),
                opts=pulumi.ResourceOptions(parent=self, depends_on=[latest]),
            )
        else:
            # No push user: the credentials are those of a `docker login` made before
            # `pulumi up` (the deploy workflow's). docker.Image reads them from the Docker config
            # file, docker.RegistryImage never does (only its authConfig or the provider's
            # registryAuth): it failed every such deploy with "no auth config found for
            # registry". The docker CLI pushes `latest` with that login instead.
            local.Command(
                f"{name}-push-latest",
                create=f"{PUSH_LATEST} {shlex.quote(f'{settings.name}:latest')}",
                triggers=[image.repo_digest],
                opts=pulumi.ResourceOptions(parent=self, depends_on=[latest]),
            )
        self.image = image
        return image.repo_digest.apply(lambda digest: digest_pinned(settings.reference, digest))
