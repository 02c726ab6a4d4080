"""The application image: built from the app's Dockerfile, tagged by commit and `latest`, pushed.

When `image.build` is false (a rollback to an existing tag, or the local stack), nothing is built
or pushed: the component only names the existing tag, so a redeploy of an earlier image can never
rebuild it from today's sources.
"""

from __future__ import annotations

import pulumi
import pulumi_docker as docker

from components.settings import ImageSettings


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
        registry = docker.RegistryArgs(
            server=settings.registry,
            username=settings.push_user,
            password=settings.push_password,
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
            opts=pulumi.ResourceOptions(parent=self),
        )
        latest = docker.Tag(
            f"{name}-tag-latest",
            source_image=image.repo_digest,
            target_image=f"{settings.name}:latest",
            opts=pulumi.ResourceOptions(parent=self),
        )
        auth = None
        if settings.push_user and settings.push_password is not None:
            auth = docker.RegistryImageAuthConfigArgs(
                address=settings.registry,
                username=settings.push_user,
                password=settings.push_password,
            )
        docker.RegistryImage(
            f"{name}-push-latest",
            name=latest.target_image,
            triggers={"digest": image.repo_digest},
            keep_remotely=True,
            auth_config=auth,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[latest]),
        )
        self.image = image
        return image.repo_digest.apply(lambda digest: digest_pinned(settings.reference, digest))
