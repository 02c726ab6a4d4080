"""What may be promoted from one stack to the next (staging -> production), decided from the two
servers' release ledgers alone: only an image that served healthy on the source, never failed
nor rolled back from there, pinned by the digest it served with. Used by promote.py."""

from __future__ import annotations

from components import release_ledger as ledger
from components.release_ledger import Entry, LedgerError, Version


class PromotionError(Exception):
    """A promotion that must not happen; the message says why and what to do."""


def _by_key(entries: list[Entry]) -> dict[str, Version]:
    return {version.digest or version.image: version for version in ledger.versions(entries)}


def choose_promotion(
    source: list[Entry], target: list[Entry], *, source_name: str, image_tag: str | None
) -> Version:
    """The version of `source` to deploy on the target: the one serving on the source now, or
    the served version tagged `image_tag` (or starting with it)."""
    if image_tag is None:
        try:
            version = _by_key(source)[ledger.serving(source).key]
        except LedgerError as error:
            raise PromotionError(
                f"nothing has served on {source_name} yet: deploy it there first"
            ) from error
    else:
        version = _tagged(source, image_tag, source_name)
    name = version.tag or version.image
    if version.status != "healthy":
        raise PromotionError(
            f"{name} {version.status} on {source_name} ({version.status_detail}): a version "
            f"that did not hold on {source_name} is never promoted. Fix it and deploy a new "
            f"version to {source_name}"
        )
    if not version.pinned:
        raise PromotionError(
            f"{source_name}'s server did not record the registry digest of {version.image}: "
            "the exact image that served cannot be named, so it cannot be promoted"
        )
    before = _by_key(target).get(version.digest)
    if before is not None and before.status != "healthy":
        raise PromotionError(
            f"{name} ({version.digest}) already {before.status} on the target "
            f"({before.status_detail}); it is not promoted again"
        )
    try:
        serving_target = ledger.serving(target)
    except LedgerError:
        return version  # nothing served there yet: a first deploy
    if serving_target.digest == version.digest:
        raise PromotionError(f"{name} ({version.digest}) is what the target serves already")
    return version


def _tagged(source: list[Entry], image_tag: str, source_name: str) -> Version:
    """The version tagged `image_tag` (or starting with it): one that served, else one that
    failed there (refused by the caller, saying so)."""
    try:
        return ledger.resolve_tag(source, image_tag)
    except LedgerError as error:
        failed = [
            v
            for v in ledger.versions(source)
            if v.tag and v.tag.startswith(image_tag) and v.status != "healthy"
        ]
        if len(failed) == 1:
            return failed[0]
        raise PromotionError(f"on {source_name}: {error}") from error
