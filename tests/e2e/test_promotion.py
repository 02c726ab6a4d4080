"""Staging, then production, through the engine: two stacks of this program on two deploy
targets of the local server (own deploy dir, backups and port each), one image repository.
promote.py deploys on production the very digest that served on staging; a version that
failed on staging is refused; each stack rolls back on its own."""

from __future__ import annotations

import json
import subprocess
from typing import TYPE_CHECKING, Any

from tests.e2e.conftest import run_tool
from tests.e2e.test_rollback import rollback

if TYPE_CHECKING:
    from collections.abc import Callable

    from local.target import HttpProbe
    from tests.e2e.conftest import E2EStack


def promote(e2e: E2EStack, *args: str) -> subprocess.CompletedProcess[str]:
    """promote.py as CI runs it, with the (shared) backend and passphrase of the stacks."""
    return run_tool(e2e, "promote.py", *args, "--yes")


def ledger(e2e: E2EStack) -> list[dict[str, Any]]:
    path = e2e.target.deploy_dir / ".deploy" / "releases.jsonl"
    text = e2e.server.ssh(f"cat {path}", check=True).stdout
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def served(e2e: E2EStack) -> dict[str, Any]:
    return [entry for entry in ledger(e2e) if entry["event"] == "served"][-1]


def test_one_digest_goes_from_staging_to_production_and_each_rolls_back_alone(
    make_stack: Callable[..., E2EStack], sample_images: dict[str, str], http: HttpProbe
) -> None:
    staging = make_stack("staging")
    production = make_stack("production")
    staging.up()
    production.up()
    staging.set_tag("v2")
    staging.up()
    assert staging.served_version(http) == "v2"
    on_staging = served(staging)

    # --check decides and changes nothing (the deploy workflow previews what it prints).
    names = ("--from", staging.stack.name, "--to", production.stack.name)
    checked = promote(staging, *names, "--check")
    assert checked.returncode == 0, checked.stderr
    assert checked.stdout.split() == ["v2", f"v2@{on_staging['digest']}"]
    assert production.served_version(http) == "v1"
    result = promote(staging, "--from", staging.stack.name, "--to", production.stack.name)
    assert result.returncode == 0, result.stdout + result.stderr
    assert production.served_version(http) == "v2"
    on_production = served(production)
    assert on_production["digest"] == on_staging["digest"] != ""
    pinned = f"v2@{on_staging['digest']}"
    assert production.stack.outputs()["image"] == f"{sample_images['v2']}@{on_staging['digest']}"
    config = production.stack.run("config", "get", "mcp:imagePin").stdout.strip()
    assert config == pinned
    assert production.stack.history()[0]["message"] == f"promote: v2 from {staging.stack.name}"
    again = promote(staging, "--from", staging.stack.name, "--to", production.stack.name)
    assert again.returncode == 2 and "serves already" in again.stderr, again.stderr

    # A version that failed its health check on staging never reaches production.
    staging.set_tag("broken-500")
    assert staging.up(check=False).returncode != 0
    assert staging.served_version(http) == "v2"
    refused = promote(
        staging, "--from", staging.stack.name, "--to", production.stack.name,
        "--image-tag", "broken-500",
    )  # fmt: skip
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "never served" in refused.stderr or "failed on" in refused.stderr, refused.stderr
    assert production.served_version(http) == "v2"
    assert served(production) == on_production

    # Each rolls back on its own: staging's rollback writes nothing on production's server.
    production_ledger = ledger(production)
    back = rollback(staging, "--last-good")
    assert back.returncode == 0, back.stdout + back.stderr
    assert staging.served_version(http) == "v1"
    assert production.served_version(http) == "v2"
    assert ledger(production) == production_ledger
    # v2 is now rolled back from on staging: it is not promoted again (it still serves on
    # production, where it did not fail).
    refused = promote(
        staging, "--from", staging.stack.name, "--to", production.stack.name, "--image-tag", "v2"
    )
    assert refused.returncode == 2 and "rolled back from on" in refused.stderr, refused.stderr
    staging_ledger = ledger(staging)
    back = rollback(production, "--last-good")
    assert back.returncode == 0, back.stdout + back.stderr
    assert production.served_version(http) == "v1"
    assert ledger(staging) == staging_ledger
