"""`oncall.py status`: what serves now on one stack's server, in one screen (pure data and
formatting; the caller reads the server, the ledger and the stack)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from components import release_ledger as ledger
from ops.audit import parse_time


def drift(stack_image: str, running_image: str, serving_digest: str) -> str:
    """ "" when the stack's `image` output is what the server runs, else what differs."""
    if not stack_image and not running_image:
        return ""
    if not stack_image:
        return f"the stack has no `image` output but the server runs {running_image}"
    if not running_image:
        return f"the stack says {stack_image} serves but nothing runs on the server"
    if stack_image == running_image:
        return ""
    stack_digest = stack_image.split("@", 1)[1] if "@" in stack_image else ""
    running_digest = running_image.split("@", 1)[1] if "@" in running_image else serving_digest
    if stack_digest and running_digest:
        if stack_digest == running_digest:
            return ""
    elif ledger.image_name(stack_image) == ledger.image_name(running_image) and ledger.image_tag(
        stack_image
    ) == ledger.image_tag(running_image):
        return ""
    return (
        f"the stack's `image` output is {stack_image} but the server runs {running_image} "
        "(a restore or deploy made by hand?)"
    )


def build(
    stack_name: str,
    server: str,
    remote: dict[str, Any],
    entries: list[ledger.Entry],
    outputs: dict[str, Any],
    last_update: dict[str, Any] | None,
) -> dict[str, Any]:
    """One stack's status: `remote` is status.sh's JSON line, `entries` the release ledger."""
    serving = next((e for e in reversed(entries) if e.event == "served"), None)
    stack_image = str(outputs.get("image") or "")
    running = str(remote.get("running_image") or "")
    return {
        "stack": stack_name,
        "server": server,
        "image": running,
        "digest": serving.digest if serving else "",
        "colour": remote.get("colour") or "",
        "container_state": remote.get("container_state") or "",
        "since": serving.at if serving else "",
        "deployed_by": serving.by if serving else "",
        "via": serving.via if serving else "",
        "commit": ledger.image_tag(running) or "",
        "backup_id": serving.backup_id if serving else "",
        "healthy": bool(remote.get("healthy")),
        "health": remote.get("health") or "",
        "frozen": bool(remote.get("frozen")),
        "frozen_by": remote.get("frozen_by") or "",
        "frozen_at": remote.get("frozen_at") or "",
        "frozen_reason": remote.get("frozen_reason") or "",
        "lock_holder": remote.get("lock_holder") or "",
        "outputs": outputs,
        "last_update": last_update,
        "drift": drift(stack_image, running, serving.digest if serving else ""),
    }


def _ago(stamp: str, now: datetime) -> str:
    seconds = int((now - parse_time(stamp)).total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit} ago"
    return f"{seconds}s ago"


def format_status(status: dict[str, Any], now: datetime) -> str:
    s = status
    since = (
        f"{s['since']} ({_ago(s['since'], now)})" if s["since"] else "unknown (no release recorded)"
    )
    lines = [
        f"stack {s['stack']} on {s['server']}",
        f"  serving      {s['image'] or 'nothing'}",
        f"  digest       {s['digest'] or 'unknown'}",
        f"  colour       {s['colour'] or '- (recreate)'}; "
        f"container {s['container_state'] or 'none'}",
        f"  since        {since}",
        f"  deployed by  {s['deployed_by'] or 'unknown'} (via {s['via'] or '-'}); commit/tag "
        f"{s['commit'] or '-'}; backup taken before it {s['backup_id'] or '-'}",
        f"  health now   {'HEALTHY' if s['healthy'] else 'UNHEALTHY'}: {s['health'][:200]}",
    ]
    if s["frozen"]:
        lines.append(
            f"  freeze       FROZEN by {s['frozen_by']} since {s['frozen_at']}: "
            f"{s['frozen_reason']}"
        )
    else:
        lines.append("  freeze       deploys allowed")
    lines.append(f"  deploy lock  {('held: ' + s['lock_holder']) if s['lock_holder'] else 'free'}")
    update = s["last_update"]
    if update:
        lines.append(
            f"  last update  {update['kind']} {update['result']} at "
            f"{update['at']} by {update['actor']}"
        )
    for key in sorted(s["outputs"]):
        value = s["outputs"][key]
        shown = value if isinstance(value, str) else json.dumps(value)
        lines.append(f"  output       {key} = {shown}")
    lines.append(f"  drift        {('DRIFT: ' + s['drift']) if s['drift'] else 'none'}")
    return "\n".join(lines)
