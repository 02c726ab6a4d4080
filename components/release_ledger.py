"""The server's release ledger as Python: which versions really served, which failed or were
rolled back from, and the rollback targets that follow.

The ledger is `<deployDir>/.deploy/releases.jsonl` (remote/lib/ledger.sh writes it: a "served"
line when a version answered its health check and took the traffic, "failed" when a release
of it failed, "rolled-back-from" when an operator or a failed smoke test moved away from it).
This module only reads it: `rollback.py` decides with it what `--last-good`, `--image-tag`
and `--list` mean. A version is its registry digest (the tag can be pushed again; the digest
cannot), or its reference where the server did not know the digest.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Literal

Event = Literal["served", "failed", "rolled-back-from"]
Status = Literal["healthy", "failed", "rolled back from"]
EVENTS: tuple[str, ...] = ("served", "failed", "rolled-back-from")


class LedgerError(Exception):
    """The ledger cannot answer the question; the message says why and what to do instead."""


@dataclass(frozen=True)
class Entry:
    at: str  # UTC, 2026-12-01T10:00:00Z
    event: Event
    image: str
    digest: str  # "" when the server did not know it
    by: str
    via: str
    detail: str
    backup_id: str

    @property
    def key(self) -> str:
        """What identifies the version: its digest, else its reference."""
        return self.digest or self.image


@dataclass(frozen=True)
class Version:
    """One version as the ledger knows it, from all its lines."""

    image: str  # the reference it served as (the newest "served" line's)
    digest: str
    tag: str | None
    first_served_at: str | None
    last_served_at: str | None
    served_by: str | None  # who deployed it the last time it served
    status: Status
    status_detail: str  # why it is failed / rolled back from ("" when healthy)
    last_event_at: str

    @property
    def pinned(self) -> str | None:
        """`<tag>@<digest>` (mcp:imagePin), None without both."""
        return f"{self.tag}@{self.digest}" if self.tag and self.digest else None

    @property
    def served(self) -> bool:
        return self.last_served_at is not None


def parse(text: str) -> list[Entry]:
    """The ledger's lines, oldest first. A line that is not a ledger object (a torn write on a
    full disk) is an error naming the line: a rollback must not decide on a partial history."""
    entries = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            raw = json.loads(line)
            event = raw["event"]
            if event not in EVENTS:
                raise ValueError(f"unknown event {event!r}")
            entries.append(
                Entry(
                    at=str(raw["at"]),
                    event=event,
                    image=str(raw["image"]),
                    digest=str(raw.get("digest", "")),
                    by=str(raw.get("by", "")),
                    via=str(raw.get("via", "")),
                    detail=str(raw.get("detail", "")),
                    backup_id=str(raw.get("backup_id", "")),
                )
            )
        except (ValueError, KeyError, TypeError) as error:
            raise LedgerError(
                f"line {number} of the server's release ledger is not a ledger entry ({error}): "
                f"{line[:200]!r}. Fix or delete that line on the server "
                "(<deployDir>/.deploy/releases.jsonl), then retry"
            ) from error
    return entries


def image_tag(reference: str) -> str | None:
    """`reg:5000/o/app:v2@sha256:...` -> `v2`; None when the reference has no tag."""
    name = reference.split("@", 1)[0]
    last = name.rsplit("/", 1)[-1]
    return last.rsplit(":", 1)[1] if ":" in last else None


def image_name(reference: str) -> str:
    """`reg:5000/o/app:v2@sha256:...` -> `reg:5000/o/app`."""
    name = reference.split("@", 1)[0]
    head, _, last = name.rpartition("/")
    return f"{head}/{last.split(':', 1)[0]}" if head else last.split(":", 1)[0]


def versions(entries: list[Entry]) -> list[Version]:
    """Every version in the ledger, the newest first (by when it was first released).
    Status: `rolled back from` or `failed` once any line says so (a version that was rolled
    back from is never "good" again, even if an automatic rollback later started it once
    more), else `healthy` when it served."""
    grouped: dict[str, list[Entry]] = {}
    for entry in entries:
        grouped.setdefault(entry.key, []).append(entry)
    found = []
    for lines in grouped.values():
        served = [e for e in lines if e.event == "served"]
        marks = [e for e in lines if e.event != "served"]
        rolled_back = [e for e in marks if e.event == "rolled-back-from"]
        status: Status = "healthy"
        detail = ""
        if rolled_back:
            status, detail = "rolled back from", f"{rolled_back[-1].detail} ({rolled_back[-1].at})"
        elif marks:
            status, detail = "failed", f"{marks[-1].detail} ({marks[-1].at})"
        shown = served[-1] if served else lines[-1]
        found.append(
            Version(
                image=shown.image,
                digest=shown.digest,
                tag=image_tag(shown.image),
                first_served_at=served[0].at if served else None,
                last_served_at=served[-1].at if served else None,
                served_by=served[-1].by if served else None,
                status=status,
                status_detail=detail,
                last_event_at=lines[-1].at,
            )
        )
    first_seen: dict[str, int] = {}
    for index, entry in enumerate(entries):
        first_seen.setdefault(entry.key, index)
    return sorted(found, key=lambda v: first_seen[v.digest or v.image], reverse=True)


def serving(entries: list[Entry]) -> Entry:
    """The newest "served" line: what serves now (every release, restore and automatic
    rollback that ends healthy writes one)."""
    for entry in reversed(entries):
        if entry.event == "served":
            return entry
    raise LedgerError(
        "the server's release ledger records no version that served (no deploy since the "
        "ledger exists). Name the tag with --image-tag, or restore a backup with --backup"
    )


def last_good(entries: list[Entry]) -> Version:
    """Walking back through what served, newest first: the first version other than the one
    serving that served healthy and was never failed nor rolled back from."""
    current = serving(entries)
    seen: set[str] = {current.key}
    by_key = {v.digest or v.image: v for v in versions(entries)}
    for entry in reversed(entries):
        if entry.event != "served" or entry.key in seen:
            continue
        seen.add(entry.key)
        version = by_key[entry.key]
        if version.status == "healthy":
            return version
    skipped = [f"{v.tag or v.image} ({v.status})" for v in by_key.values() if v.status != "healthy"]
    raise LedgerError(
        f"no earlier version served healthy on this server besides the one serving "
        f"({current.image}); not good: {', '.join(skipped) or 'none'}. Name a tag with "
        "--image-tag (see --list), or restore a backup with --backup"
    )


def resolve_tag(entries: list[Entry], wanted: str) -> Version:
    """The version whose tag is `wanted` or starts with it (a short commit SHA for CI's
    40-character tags), among those that served. Unknown or ambiguous: an error listing the
    candidates."""
    served = [v for v in versions(entries) if v.served and v.tag]
    exact = [v for v in served if v.tag == wanted]
    matches = exact or [v for v in served if v.tag and v.tag.startswith(wanted)]
    tags = sorted({v.tag for v in matches if v.tag})
    if len(tags) == 1:
        same_tag = [v for v in matches if v.tag == tags[0]]
        if len(same_tag) > 1:
            digests = ", ".join(
                f"{v.digest or '?'} (last served {v.last_served_at})" for v in same_tag
            )
            raise LedgerError(
                f"tag {tags[0]!r} served with {len(same_tag)} different images: {digests}. "
                "A tag was pushed again with other content; restore the one you want with "
                "--backup (see --list)"
            )
        return same_tag[0]
    if not tags:
        known = ", ".join(v.tag for v in served[:10] if v.tag) or "none"
        raise LedgerError(
            f"no version tagged {wanted!r} (or starting with it) ever served on this server "
            f"(newest served tags: {known}). Only an image that served is redeployed or "
            "promoted; to deploy another tag, run an ordinary deploy of it"
        )
    raise LedgerError(
        f"{wanted!r} is ambiguous: it starts {len(tags)} served tags ({', '.join(tags)}); "
        "give more characters"
    )
