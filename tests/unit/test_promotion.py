"""What promote.py may deploy on the next stack, from the two servers' release ledgers
(components/promotion.py): only what served healthy on the source, by its digest."""

from __future__ import annotations

import pytest

from components.promotion import PromotionError, choose_promotion
from tests.unit.test_rollback import A, B, C, digest, entries, line


def choose(source: list[str], target: list[str], image_tag: str | None = None) -> str | None:
    version = choose_promotion(
        entries(*source) if source else [],
        entries(*target) if target else [],
        source_name="staging",
        image_tag=image_tag,
    )
    return version.pinned


def test_what_serves_on_staging_is_promoted_by_its_digest() -> None:
    staging = [line("served", A, at=1), line("served", B, at=2)]
    assert choose(staging, [line("served", A, at=3)]) == f"{B}@{digest(B)}"
    assert choose(staging, []) == f"{B}@{digest(B)}"  # a first deploy of production
    assert choose(staging, [line("served", B, at=3)], image_tag=A[:7]) == f"{A}@{digest(A)}"


@pytest.mark.parametrize(
    ("source", "target", "tag", "message"),
    [
        ([line("served", A, at=1), line("failed", B, at=2)], [], B[:7], f"{B} failed on staging"),
        (
            [line("served", A, at=1), line("served", B, at=2), line("rolled-back-from", B, at=3)],
            [],
            B,
            f"{B} rolled back from on staging",
        ),
        ([line("served", A, at=1)], [line("served", A, at=2)], None, "serves already"),
        (
            [line("served", A, at=1), line("served", B, at=2)],
            [line("served", B, at=3), line("rolled-back-from", B, at=4), line("served", A, at=5)],
            None,
            "already rolled back from on the target",
        ),
        ([line("served", A, at=1)], [], C[:7], "ever served on this server"),
        ([line("failed", A, at=1)], [], None, "nothing has served on staging yet"),
    ],
    ids=["failed", "rolled-back-from", "same", "failed-on-target", "unknown", "empty"],
)
def test_refused(source: list[str], target: list[str], tag: str | None, message: str) -> None:
    with pytest.raises(PromotionError, match=message):
        choose(source, target, tag)
