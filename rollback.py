"""Rolls a stack back through Pulumi, to a version that really served on its server.

    python rollback.py --stack production --list               # what you can go back to
    python rollback.py --stack production --last-good          # last version that served healthy
    python rollback.py --stack production --image-tag 3f2c1ab  # a tag, or its prefix, that served
    python rollback.py --stack production --backup latest      # or --backup 20251017_143025
    ... --reason "smoke test failed"                           # recorded on the server
    ... --override-freeze                                      # emergency: pass a deploy freeze

Where it looks: the server's release ledger (`<deployDir>/.deploy/releases.jsonl`, read over
SSH with the stack's own pinned host key and deploy key): each release and restore records
there the image that served, with its registry digest, who deployed it, and whether it failed;
each rollback records the version it moves away from ("rolled back from"), so that version is
never picked as "good" again.

What it changes: before the `pulumi up`, it marks what serves now as rolled back from. A tag
rollback sets `mcp:imageTag` to the target's tag and `mcp:imagePin` to `<tag>@<digest>`, the
exact image that served: nothing is built or pushed, and a later plain `pulumi up` keeps
deploying that image (a no-op), never today's sources under the old tag. A backup restore is
one-shot (`mcp:restoreBackup` is removed afterwards) and then pins the image the backup
restored the same way, so the next plain `up` does not put the bad version back over the
restored data. The next ordinary deploy is an explicit new version: CI passes a new tag with
a stack file that has no pin; on a terminal, `pulumi config rm mcp:imagePin` first.
`mcp:release.author` is set to who rolls back (the CI actor and run, or the local user).
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import re
import socket
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from components import config_keys
from components import release_ledger as ledger
from components.release_ledger import LedgerError, Version
from components.server_access import ServerAccess, ServerAccessError, from_stack_config
from components.settings import ACTOR_PATTERN, BACKUP_ID_PATTERN, IMAGE_TAG_PATTERN
from ops.commands import freeze as freeze_command
from ops.stack import stack_config

PROJECT_DIR = Path(__file__).resolve().parent
TAG_KEY = "mcp:imageTag"
PIN_KEY = "mcp:imagePin"
RESTORE_KEY = "mcp:restoreBackup"
AUTHOR_PATH = "mcp:release.author"
OVERRIDE_FREEZE_PATH = "mcp:release.overrideFreeze"  # one update only (see --override-freeze)
# The restore step's resource (components/server.py: ServerDeployment "server", step "restore").
RESTORE_RESOURCE = "mcp:deploy:Server$command:remote:Command::server-restore"


class RollbackError(Exception):
    """A rollback that cannot proceed; the message says why and what to do."""


def actor() -> str:
    """Who rolls back: the CI actor and run, or the local user and host (ledger-safe)."""
    if os.environ.get("GITHUB_ACTIONS") == "true" and os.environ.get("GITHUB_ACTOR"):
        who = f"{os.environ['GITHUB_ACTOR']} (run {os.environ.get('GITHUB_RUN_ID', '?')})"
    else:
        who = f"{getpass.getuser()}@{socket.gethostname()}"
    who = re.sub(r"[^][A-Za-z0-9 ._@+:/#()-]", "-", who)[:200]
    return who if ACTOR_PATTERN.fullmatch(who) else "unknown-user"


@dataclass(frozen=True)
class Target:
    """Where a rollback goes: a version of the ledger (tag rollback) or a backup."""

    description: str
    version: Version | None = None
    backup: str | None = None


def choose_target(
    entries: list[ledger.Entry], *, last_good: bool, image_tag: str | None, backup: str | None
) -> Target:
    """The rollback target, decided from the ledger alone (validated before anything runs)."""
    if backup is not None:
        if not BACKUP_ID_PATTERN.fullmatch(backup):
            raise RollbackError(f"--backup {backup!r} is not YYYYMMDD_HHMMSS or 'latest'")
        return Target(f"restore backup {backup}", backup=backup)
    if last_good:
        version = ledger.last_good(entries)
        source = f"the last version that served healthy, {version.last_served_at}"
    else:
        assert image_tag is not None
        if not IMAGE_TAG_PATTERN.fullmatch(image_tag):
            raise RollbackError(
                f"--image-tag {image_tag!r} is not a Docker tag (e.g. a commit SHA or its start)"
            )
        version = ledger.resolve_tag(entries, image_tag)
        source = f"served {version.last_served_at}"
        current = _serving_or_none(entries)
        if current is not None and (version.digest or version.image) == current.key:
            raise RollbackError(f"{version.tag} is the version serving now: nothing to roll back")
    if not version.pinned:
        raise RollbackError(
            f"the server did not record the registry digest of {version.image}, so the exact "
            "image that served cannot be named; restore a backup of it with --backup instead"
        )
    return Target(f"redeploy {version.tag} as it served ({version.digest}; {source})", version)


def list_versions(entries: list[ledger.Entry]) -> list[dict[str, Any]]:
    """`--list`: every version, newest first, as rows."""
    try:
        now = ledger.serving(entries).key
    except LedgerError:
        now = None
    return [
        {
            "tag": v.tag or "",
            "image": v.image,
            "digest": v.digest,
            "last_served_at": v.last_served_at or "",
            "by": v.served_by or "",
            "status": v.status,
            "why": v.status_detail,
            "serving": (v.digest or v.image) == now,
        }
        for v in ledger.versions(entries)
    ]


def format_versions(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "no version has served on this server yet (its release ledger is empty)"
    lines = [f"{'TAG':<42} {'DIGEST':<20} {'LAST SERVED':<21} {'BY':<24} STATUS"]
    for row in rows:
        status = row["status"] + (" (serving now)" if row["serving"] else "")
        if row["why"]:
            status += f": {row['why']}"
        lines.append(
            f"{row['tag'] or '-':<42} {row['digest'][:19] or '-':<20} "
            f"{row['last_served_at'] or 'never':<21} {row['by'][:24] or '-':<24} {status}"
        )
    return "\n".join(lines)


def run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--stack", required=True, help="stack name, e.g. production")
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--image-tag", help="redeploy this tag (or unique prefix) as it served")
    target.add_argument("--backup", help="restore this backup (YYYYMMDD_HHMMSS or latest)")
    target.add_argument(
        "--last-good", action="store_true", help="the last version that served healthy"
    )
    target.add_argument("--list", action="store_true", help="list the versions, newest first")
    parser.add_argument(
        "--reason", help="why (recorded on the server with what is rolled back from)"
    )
    parser.add_argument("--json", action="store_true", help="with --list: JSON")
    parser.add_argument(
        "--override-freeze",
        action="store_true",
        help="an emergency rollback while deploys are frozen (oncall.py lock acquire): the\n"
        "scripts run anyway and the ledger and audit record that the freeze was passed",
    )
    parser.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    args = parser.parse_args(argv)

    from pulumi import automation as auto

    def say(message: str) -> None:
        print(f"[rollback] {message}", file=sys.stderr, flush=True)

    try:
        if args.reason is not None and (len(args.reason) > 500 or "\n" in args.reason):
            raise RollbackError("--reason must be one line of at most 500 characters")
        say(f"selecting stack {args.stack!r} in {PROJECT_DIR}")
        stack = auto.select_stack(stack_name=args.stack, work_dir=str(PROJECT_DIR))
        config = stack_config(stack)
        server = from_stack_config(config)
        say(f"reading the release ledger on {server.user}@{server.host}:{server.port}")
        entries = read_ledger(server)
        if args.list:
            rows = list_versions(entries)
            print(json.dumps(rows, indent=2) if args.json else format_versions(rows))
            return 0
        chosen = choose_target(
            entries, last_good=args.last_good, image_tag=args.image_tag, backup=args.backup
        )
        check_freeze(server, args.override_freeze, say)
        current = _serving_or_none(entries)
        say(f"serving now: {current.image if current else 'nothing recorded'}")
        state = stack.export_stack().deployment or {}
        _warn_if_outputs_disagree(state, current, say)
        if chosen.version is not None and chosen.version.status != "healthy":
            version = chosen.version
            say(f"WARNING: {version.tag} was {version.status}: {version.status_detail}")
        if not args.yes and not _confirm(f"{chosen.description} on stack {args.stack}?"):
            say("cancelled; nothing changed")
            return 1
        who = actor()
        reason = args.reason or f"rollback.py: {chosen.description}"
        if current is not None:
            mark(server, current.image, reason, who)
            say(f"recorded on the server: {current.image} is rolled back from ({reason})")
        # Set with the version's own keys, in one `pulumi config set-all`.
        settings = {AUTHOR_PATH: who}
        if args.override_freeze:  # for this update only: never left for the next deploy
            settings[OVERRIDE_FREEZE_PATH] = "true"
        try:
            if chosen.version is not None:
                return _redeploy(stack, chosen, say, config, settings)
            return _restore(stack, server, chosen, say, config, settings, state)
        finally:
            if args.override_freeze:
                stack.remove_config(OVERRIDE_FREEZE_PATH, path=True)
    except (RollbackError, LedgerError, ServerAccessError) as error:
        say(f"REFUSED: {error}")
        return 2
    except auto.errors.CommandError as error:
        say(f"FAILED: pulumi reported an error; the server runs what the error says.\n{error}")
        return 1


def read_ledger(server: ServerAccess) -> list[ledger.Entry]:
    script = f"{server.scripts_dir}/ledger.sh"
    try:
        text = server.run(["bash", script, "--deploy-dir", server.deploy_dir, "--list"])
    except ServerAccessError as error:
        raise ServerAccessError(
            f"{error}. If the server's scripts predate the release ledger ({script} missing), "
            "run one ordinary `pulumi up` first"
        ) from error
    return ledger.parse(text)


def check_freeze(server: ServerAccess, override: bool, say: Any) -> None:
    """Refuses before anything is marked or run while deploys are frozen, unless `override`."""
    try:
        text = server.run(freeze_command(server, "status", actor=""))
        freeze = json.loads(text.strip().splitlines()[-1])
    except (ServerAccessError, ValueError, IndexError) as error:
        say(f"WARNING: could not read the deploy freeze ({error}); the server's scripts decide")
        return
    if not freeze.get("frozen"):
        return
    what = f"frozen by {freeze['by']} since {freeze['at']}: {freeze['reason']}"
    if not override:
        raise RollbackError(
            f"deploys are FROZEN on this server: {what}. Wait until it is lifted (oncall.py "
            "lock release), or, for an emergency rollback, pass --override-freeze"
        )
    say(f"OVERRIDING the deploy freeze ({what}): recorded in the release ledger and the audit")


def mark(server: ServerAccess, image: str, reason: str, who: str) -> None:
    server.run(
        [
            "bash", f"{server.scripts_dir}/ledger.sh", "--deploy-dir", server.deploy_dir,
            "--mark", "rolled-back-from", "--image", image, "--reason", reason[:500],
            "--via", "rollback", "--actor", who,
        ]
    )  # fmt: skip


def _redeploy(
    stack: Any, chosen: Target, say: Any, config: Mapping[str, Any], settings: Mapping[str, str]
) -> int:
    version = chosen.version
    assert version is not None
    outputs = deploy_pinned(
        stack, version, f"rollback: {chosen.description}", say, config=config, settings=settings
    )
    say(
        f"DONE: {chosen.description}. Serving image {outputs.get('image')!r}; backup taken "
        f"before it: {outputs.get('backup_id')!r}; URL {outputs.get('url')!r}. The stack stays "
        f"pinned to it ({PIN_KEY}); to deploy a new version: pulumi config rm {PIN_KEY}"
    )
    return 0


def set_config_values(stack: Any, values: Mapping[str, str]) -> None:
    """Plain config values (`--path` keys) in one `pulumi config set-all`: each `pulumi config`
    command is a CLI process that loads the stack and its secrets key (~0.25 s)."""
    from pulumi import automation as auto

    stack.set_all_config({k: auto.ConfigValue(v) for k, v in values.items()}, path=True)


def deploy_pinned(
    stack: Any,
    version: Version,
    message: str,
    say: Any,
    *,
    config: Mapping[str, Any],
    settings: Mapping[str, str],
) -> dict[str, Any]:
    """`pulumi up` of `version` exactly as it served (mcp:imageTag + mcp:imagePin, no restore,
    nothing built), with `settings` (more config, `--path` keys) set in the same command; the
    stack's outputs. `config`: the stack's config as read before (`ops.stack.stack_config`); a
    restore key left in it by an interrupted restore is removed first."""
    assert version.tag and version.pinned
    if RESTORE_KEY in config:
        stack.remove_config(RESTORE_KEY, path=True)
    values = {**settings, TAG_KEY: version.tag, PIN_KEY: version.pinned}
    set_config_values(stack, values)
    say(f"{message}: running pulumi up ({PIN_KEY}={version.pinned})")
    result = stack.up(on_output=print, message=message)
    return {key: value.value for key, value in result.outputs.items()}


def _restore(
    stack: Any,
    server: ServerAccess,
    chosen: Target,
    say: Any,
    config: Mapping[str, Any],
    settings: Mapping[str, str],
    state: Mapping[str, Any],
) -> int:
    assert chosen.backup is not None
    values = {**settings, RESTORE_KEY: chosen.backup}
    set_config_values(stack, values)
    replace = _existing(state, [RESTORE_RESOURCE])
    say(f"{chosen.description}: running pulumi up")
    try:
        result = stack.up(
            on_output=print, message=f"rollback: {chosen.description}", replace=replace
        )
    finally:
        stack.remove_config(RESTORE_KEY, path=True)
    outputs = {key: value.value for key, value in result.outputs.items()}
    say(
        f"DONE: {chosen.description}. Serving image {outputs.get('image')!r}; backup restored: "
        f"{outputs.get('backup_id')!r}; URL {outputs.get('url')!r}"
    )
    restored = _serving_or_none(read_ledger(server))
    pin = _pin_for({k: v["value"] for k, v in config.items()}, restored)
    if pin is None:
        say(
            f"WARNING: the restored image {restored.image if restored else '(none)'} is not a "
            f"tag of this stack's image with a known digest, so nothing is pinned: the next "
            f"pulumi up deploys {TAG_KEY} over the restored data; set it to the version "
            "you want first"
        )
        return 0
    tag, pinned = pin
    pins = {TAG_KEY: tag, PIN_KEY: pinned}
    set_config_values(stack, pins)
    say(
        f"{RESTORE_KEY} removed; {PIN_KEY}={pinned}: the next plain pulumi up keeps the restored "
        f"version (no bad tag goes back over the restored data); to deploy a new version: "
        f"pulumi config rm {PIN_KEY}"
    )
    return 0


def image_repository(config: dict[str, str]) -> str:
    """`<registry>/<repository>` a stack deploys, from its config values (mcp:image)."""
    image = json.loads(config.get("mcp:image", "{}") or "{}")
    registry = image.get("registry", config_keys.key("image.registry").default)
    return f"{registry}/{image.get('repository', '')}"


def _pin_for(config: Mapping[str, str], restored: ledger.Entry | None) -> tuple[str, str] | None:
    """(tag, `<tag>@<digest>`) for the restored image, when it is this stack's image."""
    if restored is None or not restored.digest:
        return None
    tag = ledger.image_tag(restored.image)
    if not tag or ledger.image_name(restored.image) != image_repository(config):
        return None
    return tag, f"{tag}@{restored.digest}"


def _serving_or_none(entries: list[ledger.Entry]) -> ledger.Entry | None:
    try:
        return ledger.serving(entries)
    except LedgerError:
        return None


def _stack_outputs(state: Mapping[str, Any]) -> Mapping[str, Any]:
    """The root stack resource's outputs in an exported state (secret ones stay encrypted)."""
    for resource in state.get("resources") or []:
        if resource.get("type") == "pulumi:pulumi:Stack":
            return resource.get("outputs") or {}
    return {}


def _warn_if_outputs_disagree(
    state: Mapping[str, Any], current: ledger.Entry | None, say: Any
) -> None:
    output = _stack_outputs(state).get("image")
    image = output if isinstance(output, str) else ""
    if current is not None and image and ledger.image_tag(image) != ledger.image_tag(current.image):
        say(
            f"WARNING: the stack's `image` output is {image!r} but the server's ledger says "
            f"{current.image!r} serves (a restore made by hand?); going by the server"
        )


def _existing(state: Mapping[str, Any], resources: list[str]) -> list[str]:
    """The URNs of `resources` (type::name) that the exported state holds (for `--replace`:
    replacing a resource makes its command run again; an absent one would be an error)."""
    urns = [str(r.get("urn", "")) for r in state.get("resources") or []]
    return [urn for urn in urns if any(urn.endswith(f"::{name}") for name in resources)]


def _confirm(question: str) -> bool:
    if not sys.stdin.isatty():
        raise RollbackError("no terminal to confirm on; pass --yes to run non-interactively")
    return re.match(r"^(y|yes)$", input(f"{question} [y/N] ").strip().lower()) is not None


if __name__ == "__main__":
    sys.exit(run(sys.argv[1:]))
