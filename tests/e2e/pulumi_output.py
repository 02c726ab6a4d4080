"""Reading what `pulumi preview` / `pulumi up` (non-interactive, plain text) say they changed."""

from __future__ import annotations

import re

# A resource row of the plan/progress table: `+   ├─ docker:index:Image  app-build  created`.
_ROW = re.compile(r"^\s*(\+-|-\+|\+\+|--|\+|-|~)\s+[├└│─ ]*[A-Za-z0-9_]+:[^\s]+\s+(\S+)")


def changed_resources(output: str) -> list[str]:
    """`["+ app-build", "~ server-deploy", ...]`: each resource the output shows an operation
    for, once, in order."""
    seen: list[str] = []
    for line in output.splitlines():
        match = _ROW.match(line)
        if match is not None:
            entry = f"{match.group(1)} {match.group(2)}"
            if entry not in seen:
                seen.append(entry)
    return seen


def changes_besides_script_copies(output: str) -> list[str]:
    """`changed_resources`, without re-copies of the remote scripts (`server-scripts`): on a
    shared checkout, another engineer's edit of remote/*.sh between two `up`s re-copies it, and
    that says nothing about the image or the GitHub side. A copy runs nothing on the server."""
    return [entry for entry in changed_resources(output) if " server-scripts" not in entry]
