"""Rolls production back through Pulumi: redeploy an earlier image tag, or restore a backup.

    python rollback.py --stack production --last-good          # tag of the last good deploy
    python rollback.py --stack production --image-tag 3f2c1ab  # a tag you name
    python rollback.py --stack production --backup latest      # or --backup 20251017_143025

It reads what serves from the stack's outputs and `pulumi stack history --json` (through
Pulumi's Automation API), sets the stack config for this run, runs `pulumi up`, and reports
what it did. Nothing is built: a rollback redeploys an image that already exists in the registry.

- A tag rollback leaves `mcp:imageTag` at the tag it deployed (so a plain `pulumi up` keeps it)
  and puts `mcp:image.build` back to what it was, so the next ordinary deploy builds again.
- A backup restore is one-shot: `mcp:restoreBackup` is set for that one `pulumi up` and removed
  afterwards (whatever the outcome), and the restore step always runs, also when the same
  backup name (e.g. `latest`) was restored before; the next ordinary `pulumi up` deploys.
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from components.settings import BACKUP_ID_PATTERN, IMAGE_TAG_PATTERN

PROJECT_DIR = Path(__file__).resolve().parent
TAG_KEY = "mcp:imageTag"
RESTORE_KEY = "mcp:restoreBackup"
BUILD_PATH = "mcp:image.build"
# The restore step's resource (components/server.py: ServerDeployment "server", step "restore").
RESTORE_RESOURCE = "mcp:deploy:Server$command:remote:Command::server-restore"


class RollbackError(Exception):
    """A rollback that cannot proceed; the message says why and what to do."""


@dataclass(frozen=True)
class HistoryEntry:
    version: int | None
    kind: str
    result: str
    image_tag: str | None
    restore_backup: str | None
    message: str


def parse_history(raw_entries: list[dict[str, Any]]) -> list[HistoryEntry]:
    """Turns `pulumi stack history --json` entries (newest first) into typed entries."""

    def config_value(entry: dict[str, Any], key: str) -> str | None:
        value = (entry.get("config") or {}).get(key)
        if isinstance(value, dict):
            value = value.get("value")
        return str(value) if value not in (None, "") else None

    return [
        HistoryEntry(
            version=entry.get("version"),
            kind=str(entry.get("kind", "")),
            result=str(entry.get("result", "")),
            image_tag=config_value(entry, TAG_KEY),
            restore_backup=config_value(entry, RESTORE_KEY),
            message=str(entry.get("message", "")),
        )
        for entry in raw_entries
    ]


def image_tag_of(reference: str) -> str | None:
    """The tag of an image reference (`reg:5000/o/app:v2@sha256:...` -> `v2`), None if untagged."""
    name = reference.split("@", 1)[0]
    last = name.rsplit("/", 1)[-1]
    return last.rsplit(":", 1)[1] if ":" in last else None


def serving_tag(outputs: dict[str, Any]) -> str:
    """The tag of the image the stack says is serving (its `image` output)."""
    image = str(outputs.get("image") or "")
    tag = image_tag_of(image)
    if not tag:
        raise RollbackError(
            f"the stack's `image` output is {image!r}: it does not say which tag serves (no "
            "deploy yet, or the last one was a restore). Name the tag with --image-tag TAG."
        )
    return tag


def find_last_good_tag(history: list[HistoryEntry], current_tag: str | None) -> HistoryEntry:
    """The newest successful deploy (not a restore) of a tag other than the one serving."""
    for entry in history:
        if (
            entry.kind == "update"
            and entry.result == "succeeded"
            and entry.restore_backup is None
            and entry.image_tag
            and entry.image_tag != current_tag
        ):
            return entry
    tags = ", ".join(sorted({e.image_tag for e in history if e.image_tag})) or "none"
    raise RollbackError(
        f"no earlier successful deploy of a tag other than {current_tag!r} in the stack history "
        f"(tags seen: {tags}). Name one with --image-tag TAG, or restore a backup with --backup."
    )


@dataclass(frozen=True)
class RollbackPlan:
    description: str
    config: dict[str, str]  # set before the run
    remove: tuple[str, ...]  # removed before the run
    one_shot: tuple[str, ...] = ()  # removed after the run, whatever its outcome
    restore_previous: tuple[str, ...] = ()  # put back to their value before the run


def plan_rollback(
    *, image_tag: str | None, backup: str | None, last_good: HistoryEntry | None
) -> RollbackPlan:
    """What config one rollback sets and removes (validated before anything runs)."""
    if backup is not None:
        if not BACKUP_ID_PATTERN.match(backup):
            raise RollbackError(f"--backup {backup!r} is not YYYYMMDD_HHMMSS or 'latest'")
        return RollbackPlan(
            f"restore backup {backup}", {RESTORE_KEY: backup}, (), one_shot=(RESTORE_KEY,)
        )
    tag = last_good.image_tag if last_good is not None else image_tag
    if not tag or not IMAGE_TAG_PATTERN.match(tag):
        raise RollbackError(f"image tag {tag!r} is not a valid Docker tag (example: 3f2c1ab)")
    source = f" (last good deploy, update #{last_good.version})" if last_good else ""
    return RollbackPlan(
        f"redeploy image tag {tag}{source}",
        {TAG_KEY: tag, BUILD_PATH: "false"},
        (RESTORE_KEY,),
        restore_previous=(BUILD_PATH,),
    )


def run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--stack", required=True, help="stack name, e.g. production")
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--image-tag", help="redeploy this existing image tag")
    target.add_argument("--backup", help="restore this backup (YYYYMMDD_HHMMSS or latest)")
    target.add_argument("--last-good", action="store_true", help="redeploy the last good tag")
    parser.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    args = parser.parse_args(argv)

    from pulumi import automation as auto

    def say(message: str) -> None:
        print(f"[rollback] {message}", file=sys.stderr, flush=True)

    try:
        say(f"selecting stack {args.stack!r} in {PROJECT_DIR}")
        stack = auto.select_stack(stack_name=args.stack, work_dir=str(PROJECT_DIR))
        last_good = None
        if args.last_good:
            current = serving_tag({k: v.value for k, v in stack.outputs().items()})
            say(f"serving now (stack output `image`): tag {current}")
            say("reading pulumi stack history --json")
            raw = [_summary_to_dict(item) for item in stack.history()]
            last_good = find_last_good_tag(parse_history(raw), current)
            say(f"last good deploy: update #{last_good.version}, tag {last_good.image_tag}")
        plan = plan_rollback(image_tag=args.image_tag, backup=args.backup, last_good=last_good)
        if not args.yes and not _confirm(f"{plan.description} on stack {args.stack}?"):
            say("cancelled; nothing changed")
            return 1
        previous = {key: _config_value(stack, key) for key in plan.restore_previous}
        for key in plan.remove:
            stack.remove_config(key, path=True)
        for key, value in plan.config.items():
            stack.set_config(key, auto.ConfigValue(value), path=True)
        replace = _existing(stack, [RESTORE_RESOURCE]) if plan.one_shot else []
        say(f"{plan.description}: running pulumi up")
        try:
            result = stack.up(
                on_output=print, message=f"rollback: {plan.description}", replace=replace
            )
        finally:
            for key in plan.one_shot:
                stack.remove_config(key, path=True)
            for key in plan.restore_previous:
                if previous[key] is not None:
                    stack.set_config(key, auto.ConfigValue(str(previous[key])), path=True)
                else:
                    stack.remove_config(key, path=True)
        outputs = {key: value.value for key, value in result.outputs.items()}
        say(
            f"DONE: {plan.description}. Serving image {outputs.get('image')!r}; "
            f"backup used: {outputs.get('backup_id')!r}; URL {outputs.get('url')!r}"
        )
        if plan.one_shot:
            say(f"{', '.join(plan.one_shot)} removed again: the next pulumi up deploys as usual")
        return 0
    except RollbackError as error:
        say(f"REFUSED: {error}")
        return 2
    except auto.errors.CommandError as error:
        say(f"FAILED: pulumi reported an error; nothing else was changed by this tool.\n{error}")
        return 1


def _config_value(stack: Any, key: str) -> str | None:
    """A (path) config value of the stack, None when it is not set."""
    from pulumi import automation as auto

    try:
        return str(stack.get_config(key, path=True).value)
    except auto.errors.CommandError:
        return None


def _existing(stack: Any, resources: list[str]) -> list[str]:
    """The URNs of `resources` (type::name) that the stack's state holds (for `--replace`:
    replacing a resource makes its command run again; an absent one would be an error)."""
    state = stack.export_stack().deployment or {}
    urns = [str(r.get("urn", "")) for r in state.get("resources") or []]
    return [urn for urn in urns if any(urn.endswith(f"::{name}") for name in resources)]


def _summary_to_dict(summary: Any) -> dict[str, Any]:
    return {
        "version": summary.version,
        "kind": summary.kind,
        "result": summary.result,
        "message": summary.message,
        "config": {key: {"value": value.value} for key, value in summary.config.items()},
    }


def _confirm(question: str) -> bool:
    if not sys.stdin.isatty():
        raise RollbackError("no terminal to confirm on; pass --yes to run non-interactively")
    return re.match(r"^(y|yes)$", input(f"{question} [y/N] ").strip().lower()) is not None


if __name__ == "__main__":
    sys.exit(run(sys.argv[1:]))
