"""Rolls production back through Pulumi: redeploy an earlier image tag, or restore a backup.

    python rollback.py --stack production --last-good          # tag of the last good deploy
    python rollback.py --stack production --image-tag 3f2c1ab  # a tag you name
    python rollback.py --stack production --backup latest      # or --backup 20251017_143025

It reads `pulumi stack history --json` (through Pulumi's Automation API), sets the stack config
for this run (`mcp:imageTag` + `mcp:image.build=false`, or `mcp:restoreBackup`), runs
`pulumi up`, and reports what it did. Nothing is built: a rollback redeploys an image that
already exists in the registry.
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


def find_last_good_tag(history: list[HistoryEntry], current_tag: str | None) -> HistoryEntry:
    """The newest successful deploy (not a restore) of a tag other than the current one."""
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
    config: dict[str, str]
    remove: tuple[str, ...]


def plan_rollback(
    *, image_tag: str | None, backup: str | None, last_good: HistoryEntry | None
) -> RollbackPlan:
    """What config one rollback sets and removes (validated before anything runs)."""
    if backup is not None:
        if not BACKUP_ID_PATTERN.match(backup):
            raise RollbackError(f"--backup {backup!r} is not YYYYMMDD_HHMMSS or 'latest'")
        return RollbackPlan(f"restore backup {backup}", {RESTORE_KEY: backup}, ())
    tag = last_good.image_tag if last_good is not None else image_tag
    if not tag or not IMAGE_TAG_PATTERN.match(tag):
        raise RollbackError(f"image tag {tag!r} is not a valid Docker tag (example: 3f2c1ab)")
    source = f" (last good deploy, update #{last_good.version})" if last_good else ""
    return RollbackPlan(
        f"redeploy image tag {tag}{source}",
        {TAG_KEY: tag, BUILD_PATH: "false"},
        (RESTORE_KEY,),
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
            say("reading pulumi stack history --json")
            raw = [_summary_to_dict(item) for item in stack.history()]
            current = stack.get_all_config().get(TAG_KEY)
            last_good = find_last_good_tag(parse_history(raw), current.value if current else None)
            say(f"last good deploy: update #{last_good.version}, tag {last_good.image_tag}")
        plan = plan_rollback(image_tag=args.image_tag, backup=args.backup, last_good=last_good)
        if not args.yes and not _confirm(f"{plan.description} on stack {args.stack}?"):
            say("cancelled; nothing changed")
            return 1
        for key in plan.remove:
            stack.remove_config(key, path=True)
        for key, value in plan.config.items():
            stack.set_config(key, auto.ConfigValue(value), path=True)
        say(f"{plan.description}: running pulumi up")
        result = stack.up(on_output=print, message=f"rollback: {plan.description}")
        outputs = {key: value.value for key, value in result.outputs.items()}
        say(
            f"DONE: {plan.description}. Serving image {outputs.get('image')!r}; "
            f"backup used: {outputs.get('backup_id')!r}; URL {outputs.get('url')!r}"
        )
        say(f"note: this changed Pulumi.{args.stack}.yaml locally ({', '.join(plan.config)})")
        return 0
    except RollbackError as error:
        say(f"REFUSED: {error}")
        return 2
    except auto.errors.CommandError as error:
        say(f"FAILED: pulumi reported an error; nothing else was changed by this tool.\n{error}")
        return 1


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
