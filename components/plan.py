"""The deploy plan: from validated settings, what is uploaded and which steps run, in order.

`deploy_plan(settings)` is pure data and the only place the plan is written: each upload and
step, its exact command line, what goes on its stdin (secret inputs by name, never values),
its triggers, what it waits for and which keys its result line must hold. `ServerDeployment`
turns it into resources; the unit tests run every command line through the scripts' `--check`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pulumi

from components import remote_commands as rc
from components.remote_commands import ENV_FILE, IMAGE, PULL_PASSWORD, Ref, Word
from components.settings import Settings


@dataclass(frozen=True)
class Digest:
    """A trigger that changes with a secret input without holding it: its sha256 (secret)."""

    ref: Ref


Trigger = str | Ref | Digest


@dataclass(frozen=True)
class Upload:
    """A file (or a folder's contents, into `remote_path`) copied to the server
    (`<server>-<name>`), again whenever a trigger changes."""

    name: str
    source: Path
    remote_path: str
    triggers: tuple[Trigger, ...]
    after: tuple[str, ...] = ()


@dataclass(frozen=True)
class Step:
    """One script run over SSH (`<server>-<name>`)."""

    name: str
    script: str
    words: tuple[Word, ...]
    stdin: tuple[Ref, ...] | None  # None: no stdin at all
    triggers: tuple[Trigger, ...]
    after: tuple[str, ...]  # uploads and steps that must be done first
    result_keys: tuple[str, ...]  # what the result line (last stdout line, JSON) must hold

    @property
    def refs(self) -> tuple[Ref, ...]:
        """The deploy-time values its command line needs (e.g. the image reference)."""
        return tuple(word for word in self.words if isinstance(word, Ref))

    def command(self, values: Mapping[str, str] | None = None) -> str:
        return rc.command_line(self.words, values or {})


@dataclass(frozen=True)
class Reported:
    """A stack output: `key` of step `step`'s result line, or "" when step is None."""

    output: str
    step: str | None = None
    key: str | None = None


@dataclass(frozen=True)
class DeployPlan:
    mode: Literal["deploy", "restore"]
    uploads: tuple[Upload, ...]
    steps: tuple[Step, ...]
    outputs: tuple[Reported, ...]

    def step(self, name: str) -> Step:
        (found,) = [step for step in self.steps if step.name == name]
        return found


def file_sha256(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def tree_sha256(directory: Path) -> str:
    """One hash of every file under `directory` (relative paths and contents)."""
    digest = hashlib.sha256()
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(directory)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def script_uploads(settings: Settings) -> tuple[Upload, ...]:
    """The remote/ folder, every script with its path under it, in one copy (one SSH session,
    one resource, however many files), again when any file changes, to a directory of its own
    named by the hash of its files, `<deployDir>/.deploy/bin.upload/<sha256>`: never to
    `.deploy/bin/`, where scripts run (see `script_install`)."""
    version = tree_sha256(rc.SCRIPTS_SOURCE_DIR)
    return (
        Upload(
            name="scripts",
            source=rc.SCRIPTS_SOURCE_DIR,
            remote_path=rc.scripts_upload_dir(settings.paths, version),
            triggers=(version,),
        ),
    )


def script_install(settings: Settings, upload: Upload) -> Step:
    """Installs the uploaded copy: install-scripts.sh copies it into a new directory,
    `.deploy/bin.d/<sha256>/` (never written again), then switches the `.deploy/bin` symlink to
    it in one rename. Bash reads a running script from its file as it goes, so the upload must
    never rewrite files in place: a release still running (e.g. of a killed CI job, outside
    any lock of this run) keeps the bytes it started with, and every command line naming
    `.deploy/bin/` runs the new version from then on."""
    version = str(upload.triggers[0])
    return Step(
        name="scripts-install",
        script=rc.INSTALL_SCRIPT,
        words=rc.install_words(settings.paths, version),
        stdin=None,
        triggers=(version,),
        after=(upload.name,),
        result_keys=("version", "scripts_dir"),
    )


def deploy_plan(settings: Settings) -> DeployPlan:
    """The plan for these settings: a restore (`mcp:restoreBackup`) or a deploy."""
    scripts = script_uploads(settings)
    install = script_install(settings, scripts[0])
    installed = (install.name,)  # what every step that runs a script waits for
    paths, app = settings.paths, settings.app
    if settings.restore_backup is not None:
        backup = settings.restore_backup
        restore = Step(
            name="restore",
            script="restore.sh",
            words=rc.script_words(
                paths,
                "restore.sh",
                [
                    *rc.app_options(paths, app),
                    *rc.health_options(app),
                    ("--min-free-mb", paths.min_free_mb),  # the backup of what it replaces
                    *rc.consistency_options(app),
                    ("--backup-dir", paths.backup_dir),
                    ("--backup", backup),
                    *rc.strategy_options(app),
                    *rc.actor_options(settings.release),
                    *rc.freeze_options(settings.release),
                ],
            ),
            stdin=None,
            triggers=(backup,),
            after=installed,
            result_keys=("restored_backup", "image", "replaced_backup"),
        )
        return DeployPlan(
            mode="restore",
            uploads=scripts,
            steps=(install, restore),
            outputs=(
                Reported("image", "restore", "image"),
                Reported("backup_id", "restore", "restored_backup"),
                Reported("previous_image"),
            ),
        )

    with_env = settings.env_file_content is not None
    login = settings.image.pull_user is not None and settings.image.pull_password is not None
    # What makes a new release: the image, the compose file and the env file.
    triggers: tuple[Trigger, ...] = (IMAGE, file_sha256(app.compose_source))
    if with_env:
        triggers += (Digest(ENV_FILE),)
    env_option: list[rc.Option] = [("--env-file", app.env_file_name)] if with_env else []
    login_options: list[rc.Option] = (
        [("--registry", settings.image.registry), ("--registry-user", settings.image.pull_user)]
        if login
        else []
    )
    # Copied again only when its content changes: staged files stay in place after a release
    # (a retry re-runs the release alone), so a new tag needs no upload and one SSH session less.
    compose = Upload(
        name="compose",
        source=Path(app.compose_source),
        remote_path=f"{paths.staged_dir}/{app.compose_file}",
        triggers=(file_sha256(app.compose_source),),
        after=tuple(upload.name for upload in scripts),
    )
    deploy = Step(
        name="deploy",
        script="deploy.sh",
        words=rc.script_words(
            paths,
            "deploy.sh",
            [
                *rc.app_options(paths, app),
                ("--image", IMAGE),
                *env_option,
                *login_options,
                *rc.freeze_options(settings.release),
            ],
        ),
        stdin=(*((PULL_PASSWORD,) if login else ()), *((ENV_FILE,) if with_env else ())),
        triggers=triggers,
        after=(*installed, compose.name),
        result_keys=("staged_image",),
    )
    # The release takes its own backup at the start of every attempt and rolls back to it:
    # it is never handed a backup id.
    release = Step(
        name="release",
        script="release.sh",
        words=rc.script_words(
            paths,
            "release.sh",
            [
                *rc.app_options(paths, app),
                *rc.health_options(app),
                *env_option,
                *rc.backup_options(paths),
                *rc.consistency_options(app),
                *rc.strategy_options(app),
                *rc.actor_options(settings.release),
                *rc.freeze_options(settings.release),
            ],
        ),
        stdin=None,
        triggers=triggers,
        after=(deploy.name,),
        result_keys=("image", "backup_id", "previous_image"),
    )
    return DeployPlan(
        mode="deploy",
        uploads=(*scripts, compose),
        steps=(install, deploy, release),
        outputs=(
            Reported("image", "release", "image"),
            Reported("backup_id", "release", "backup_id"),
            Reported("previous_image", "release", "previous_image"),
        ),
    )


def plan_inputs(settings: Settings, image_ref: pulumi.Input[str]) -> dict[str, pulumi.Input[str]]:
    """The values of the plan's `Ref`s: the image reference and the secret inputs set."""
    values: dict[str, pulumi.Input[str]] = {IMAGE.name: image_ref}
    if settings.image.pull_password is not None:
        values[PULL_PASSWORD.name] = settings.image.pull_password
    if settings.env_file_content is not None:
        values[ENV_FILE.name] = settings.env_file_content
    return values
