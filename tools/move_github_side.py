"""Moves the GitHub side out of a server stack into the GitHub stack, deleting and recreating
nothing on GitHub (`pulumi state move`), for a production stack made before the split:

    python tools/move_github_side.py --from production --to github

Before: the destination stack exists (`pulumi stack init github`) and its file holds the same
`mcp:github` (Pulumi.github.yaml). It moves the `GitHubSetup` component and every resource
under it (environments, policies, variables, secrets; their provider comes along) with their
state, then removes `mcp:github` from the source stack's config. After it, `pulumi preview`
of both stacks must show no change on GitHub (tests/e2e/test_github_stack.py checks it
through the engine).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parent.parent
COMPONENT = "mcp:deploy:GitHub"


class MoveError(Exception):
    """The move cannot proceed; the message says why and what to do."""


def say(message: str) -> None:
    print(f"[move-github] {message}", file=sys.stderr, flush=True)


def pulumi(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        ["pulumi", *args, "--non-interactive"],
        cwd=PROJECT_DIR,
        capture_output=True,
        text=True,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    if check and proc.returncode != 0:
        raise MoveError(f"`pulumi {' '.join(args)}` failed:\n{proc.stdout}{proc.stderr}")
    return proc


def github_urns(deployment: dict[str, object]) -> list[str]:
    """The URNs of the GitHubSetup component and of every resource under it (parents first);
    not its provider: `pulumi state move` takes the providers of what it moves along."""
    resources = deployment.get("resources") or []
    assert isinstance(resources, list)
    return [
        str(resource["urn"])
        for resource in resources
        if (resource.get("type") == COMPONENT or f"::{COMPONENT}$" in str(resource.get("urn")))
        and not str(resource.get("type")).startswith("pulumi:providers:")
    ]


def unused_github_providers(deployment: dict[str, object]) -> list[str]:
    """The URNs of github providers no resource of the deployment uses."""
    resources = deployment.get("resources") or []
    assert isinstance(resources, list)
    used = {str(r.get("provider", "")).rsplit("::", 1)[0] for r in resources}
    return [
        str(r["urn"])
        for r in resources
        if r.get("type") == "pulumi:providers:github" and str(r["urn"]) not in used
    ]


def run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--from", dest="source", required=True, help="e.g. production")
    parser.add_argument("--to", dest="dest", required=True, help="e.g. github")
    args = parser.parse_args(argv)
    try:
        config = pulumi("config", "--json", "--stack", args.dest).stdout
        dest_github = json.loads(config).get("mcp:github", {}).get("objectValue")
        source_config = json.loads(pulumi("config", "--json", "--stack", args.source).stdout)
        source_github = source_config.get("mcp:github", {}).get("objectValue")
        if not dest_github:
            raise MoveError(
                f"stack {args.dest} has no mcp:github: put the source's mcp:github in "
                f"Pulumi.{args.dest}.yaml first (Pulumi.github.yaml is the example)"
            )
        if source_github and source_github != dest_github:
            raise MoveError(
                f"mcp:github differs between {args.source} and {args.dest}: make "
                f"Pulumi.{args.dest}.yaml's the same as {args.source}'s before the move, or the "
                "first up of the GitHub stack would change GitHub"
            )
        exported = json.loads(pulumi("stack", "export", "--stack", args.source).stdout)
        urns = github_urns(exported.get("deployment") or {})
        if not urns:
            raise MoveError(f"stack {args.source} holds no GitHub side ({COMPONENT})")
        moving = set(urns)
        waiting = sorted(
            str(resource["urn"])
            for resource in (exported.get("deployment") or {}).get("resources") or []
            if str(resource["urn"]) not in moving
            and moving & set(resource.get("dependencies") or [])
        )
        if waiting:
            raise MoveError(
                f"in stack {args.source}'s state, {', '.join(waiting)} still wait for the GitHub "
                f"side (a program older than the GitHub stack made them so): run `pulumi up "
                f"--stack {args.source}` once with this version of the program (nothing on the "
                "server waits for GitHub any more), then run this again"
            )
        say(
            f"moving {COMPONENT} and the {len(urns) - 1} resources under it: "
            f"{args.source} -> {args.dest}"
        )
        pulumi("state", "move", "--source", args.source, "--dest", args.dest, "--yes", *urns)
        # `state move` copies the providers of what it moves: the source's copy serves nothing
        # now; dropping it from the state deletes nothing on GitHub.
        remaining = json.loads(pulumi("stack", "export", "--stack", args.source).stdout)
        for urn in unused_github_providers(remaining.get("deployment") or {}):
            pulumi("state", "delete", urn, "--stack", args.source, "--yes")
        if source_github:
            pulumi("config", "rm", "mcp:github", "--stack", args.source)
            say(f"mcp:github removed from stack {args.source}")
        say(
            f"done. Check: pulumi preview --stack {args.source} and pulumi preview --stack "
            f"{args.dest} both show no change on GitHub"
        )
        return 0
    except MoveError as error:
        say(f"REFUSED: {error}")
        return 2


if __name__ == "__main__":
    sys.exit(run(sys.argv[1:]))
