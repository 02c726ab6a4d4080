"""`oncall.py backups`: the server's archives (remote/backups.sh's JSON lines) as rows."""

from __future__ import annotations

import json
from typing import Any


def parse(text: str) -> list[dict[str, Any]]:
    rows = [json.loads(line) for line in text.splitlines() if line.strip()]
    for row in rows:
        if not isinstance(row, dict) or "id" not in row:
            raise ValueError(f"not a backups.sh line: {row!r}")
    return rows


def human_size(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"


def format_backups(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "no backups yet"
    lines = [f"{'ID':<16} {'CREATED (UTC)':<21} {'SIZE':>10}  {'VERIFIED':<9} IMAGE"]
    for row in rows:
        verified = {True: "yes", False: "NO", None: "-"}[row.get("verified")]
        image = row.get("image") or "(nothing deployed yet)"
        size = human_size(int(row["size_bytes"]))
        line = f"{row['id']:<16} {row['created_at']:<21} {size:>10}  {verified:<9} {image}"
        if row.get("error"):
            line += f"  ({row['error']})"
        lines.append(line)
    return "\n".join(lines)
