"""Promotes the image that served on one stack to the next, by digest, through Pulumi:

    python promote.py --from staging --to production            # what serves on staging now
    python promote.py --from staging --to production --image-tag 3f2c1ab   # a tag that served
    ... --yes                                                   # no confirmation
    ... --check        # decide only, print `<tag> <tag>@<digest>`: the workflow previews that

Build once, promote the digest: nothing is built or pushed. The image is the one the source's
server recorded in its release ledger as served healthy, pinned by the digest it served with;
a version that failed on the source, or was rolled back from there, is refused, and so is a
version the target itself already failed with. The target's `mcp:imageTag` and `mcp:imagePin`
(`<tag>@<digest>`) are set and `pulumi up` runs on the target, its own backup, health check and
automatic rollback included; a deploy freeze on the target stops it (as any deploy). Both
stacks must deploy the same image repository.

A hotfix straight to production (no staging) stays possible, and says so: an ordinary deploy
of a new tag on the production stack (`pulumi config rm mcp:imagePin`, then
`pulumi up --config mcp:imageTag=<tag>`); its history message is not `promote: ...`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from components import release_ledger as ledger
from components.promotion import PromotionError, choose_promotion
from components.release_ledger import LedgerError
from components.server_access import ServerAccess, ServerAccessError
from components.settings import IMAGE_TAG_PATTERN
from ops.stack import OnCallStack, open_stack
from rollback import (
    AUTHOR_PATH,
    RollbackError,
    actor,
    check_freeze,
    deploy_pinned,
    image_repository,
    read_ledger,
)

PROJECT_DIR = Path(__file__).resolve().parent


def say(message: str) -> None:
    print(f"[promote] {message}", file=sys.stderr, flush=True)


def image_name(stack: OnCallStack) -> str:
    return image_repository({key: entry["value"] for key, entry in stack.config.items()})


def run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--from", dest="source", required=True, help="e.g. staging")
    parser.add_argument("--to", dest="target", required=True, help="e.g. production")
    parser.add_argument("--image-tag", help="promote this tag (or unique prefix) that served")
    parser.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    parser.add_argument(
        "--check",
        action="store_true",
        help="decide only: print `<tag> <tag>@<digest>` (what mcp:imageTag and mcp:imagePin\n"
        "would be) and change nothing; the deploy workflow previews and applies that",
    )
    args = parser.parse_args(argv)

    from pulumi import automation as auto

    try:
        if args.source == args.target:
            raise PromotionError("--from and --to name the same stack")
        if args.image_tag is not None and not IMAGE_TAG_PATTERN.fullmatch(args.image_tag):
            raise PromotionError(f"--image-tag {args.image_tag!r} is not a Docker tag")
        say(f"reading stacks {args.source!r} and {args.target!r} in {PROJECT_DIR}")
        source, target = open_stack(args.source), open_stack(args.target)
        if image_name(source) != image_name(target):
            raise PromotionError(
                f"{args.source} deploys {image_name(source)} but {args.target} deploys "
                f"{image_name(target)}: a promotion moves one image between stacks of the same "
                "repository (mcp:image.registry and mcp:image.repository)"
            )
        say(f"reading the release ledgers of {args.source} and {args.target}")
        version = choose_promotion(
            read_ledger(source.server),
            target_ledger(target.server, args.target),
            source_name=args.source,
            image_tag=args.image_tag,
        )
        check_freeze(target.server, False, say)
        if args.check:
            say(f"{version.tag} ({version.digest}) served healthy on {args.source}: promotable")
            print(f"{version.tag} {version.pinned}")
            return 0
        what = (
            f"promote {version.tag} ({version.digest}) from {args.source}, where it served "
            f"healthy (last {version.last_served_at}, deployed by {version.served_by})"
        )
        if not args.yes and not _confirm(f"{what} to {args.target}?"):
            say("cancelled; nothing changed")
            return 1
        return _deploy(target, version, args.source)
    except (PromotionError, RollbackError, LedgerError, ServerAccessError) as error:
        say(f"REFUSED: {error}")
        return 2
    except auto.errors.CommandError as error:
        say(f"FAILED: pulumi reported an error; the target runs what the error says.\n{error}")
        return 1


def target_ledger(server: ServerAccess, name: str) -> list[ledger.Entry]:
    """The target's release ledger; empty when nothing was ever deployed there (no scripts
    yet: the promotion is its first deploy)."""
    script = f"{server.scripts_dir}/ledger.sh"
    # Asked on its own so that an SSH failure stays an error, never "nothing deployed".
    probe = 'if test -e "$1"; then echo yes; else echo no; fi'
    found = server.run(["sh", "-c", probe, "-", script])
    if found.strip() == "no":
        say(f"nothing was ever deployed on {name} ({server.deploy_dir}): a first deploy")
        return []
    return read_ledger(server)


def _deploy(target: OnCallStack, version: ledger.Version, source: str) -> int:
    outputs = deploy_pinned(
        target.stack,
        version,
        f"promote: {version.tag} from {source}",
        say,
        config=target.config,
        settings={AUTHOR_PATH: actor()},
    )
    say(
        f"DONE: {version.tag} promoted from {source}. Serving image {outputs.get('image')!r}; "
        f"backup taken before it: {outputs.get('backup_id')!r}; URL {outputs.get('url')!r}"
    )
    return 0


def _confirm(question: str) -> bool:
    if not sys.stdin.isatty():
        raise PromotionError("no terminal to confirm on; pass --yes to run non-interactively")
    return input(f"{question} [y/N] ").strip().lower() in ("y", "yes")


if __name__ == "__main__":
    sys.exit(run(sys.argv[1:]))
