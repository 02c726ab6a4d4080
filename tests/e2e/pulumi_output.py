"""Reading what `pulumi preview` / `pulumi up` (non-interactive, plain text) say they changed."""

from __future__ import annotations

import re

# A resource row of the plan/progress table: `+   ├─ docker:index:Image  app-build  created`.
_ROW = re.compile(r"^\s*(\+-|-\+|\+\+|--|\+|-|~)\s+[├└│─ ]*[A-Za-z0-9_]+:[^\s]+\s+(\S+)")
_SUMMARY = re.compile(
    r"^\s*[+~-]*\s*(\d+) (created|updated|deleted|replaced|to create|"
    r"to update|to delete|to replace)\b"
)


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


def summary_changes(output: str) -> list[str]:
    """The non-zero lines of the `Resources:` summary other than `unchanged`, e.g. `1 updated`."""
    summary = output.rsplit("Resources:", 1)[-1] if "Resources:" in output else ""
    return [
        f"{m.group(1)} {m.group(2)}"
        for line in summary.splitlines()
        if (m := _SUMMARY.match(line)) is not None
    ]
