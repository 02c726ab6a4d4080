"""The rollback tool's decisions, from `pulumi stack history --json` entries."""

from __future__ import annotations

import pytest

from rollback import (
    BUILD_PATH,
    RESTORE_KEY,
    TAG_KEY,
    RollbackError,
    find_last_good_tag,
    image_tag_of,
    parse_history,
    plan_rollback,
    serving_tag,
)


def entry(version: int, result: str, tag: str | None, restore: str | None = None) -> dict:
    config: dict = {"mcp:server": {"value": "{}", "secret": False}}
    if tag is not None:
        config[TAG_KEY] = {"value": tag, "secret": False}
    if restore is not None:
        config[RESTORE_KEY] = {"value": restore, "secret": False}
    return {"version": version, "kind": "update", "result": result, "config": config, "message": ""}


HISTORY = parse_history(
    [  # newest first, as pulumi prints it
        entry(6, "failed", "broken1"),
        entry(5, "succeeded", "v2"),
        entry(4, "succeeded", "v2", restore="latest"),
        entry(3, "succeeded", "v1"),
        {"version": 2, "kind": "refresh", "result": "succeeded", "config": {}},
        entry(1, "succeeded", "v0"),
    ]
)


def test_last_good_skips_failed_deploys() -> None:
    assert find_last_good_tag(HISTORY, current_tag="broken1").image_tag == "v2"


def test_last_good_is_the_version_before_the_current_one() -> None:
    found = find_last_good_tag(HISTORY, current_tag="v2")
    assert (found.image_tag, found.version) == ("v1", 3)


def test_no_earlier_good_deploy_is_a_clear_refusal() -> None:
    history = parse_history([entry(1, "succeeded", "v1")])
    with pytest.raises(RollbackError, match="no earlier successful deploy"):
        find_last_good_tag(history, current_tag="v1")


def test_plan_for_a_tag_disables_the_build_and_leaves_restore_mode() -> None:
    plan = plan_rollback(image_tag="v1", backup=None, last_good=None)
    assert plan.config == {TAG_KEY: "v1", BUILD_PATH: "false"}
    assert plan.remove == (RESTORE_KEY,)


def test_plan_for_a_backup_sets_restore_backup() -> None:
    plan = plan_rollback(image_tag=None, backup="20251017_143025", last_good=None)
    assert plan.config == {RESTORE_KEY: "20251017_143025"}


@pytest.mark.parametrize(
    ("tag", "backup"), [("bad tag", None), ("$(id)", None), (None, "yesterday")]
)
def test_bad_targets_are_refused_before_anything_runs(tag: str | None, backup: str | None) -> None:
    with pytest.raises(RollbackError):
        plan_rollback(image_tag=tag, backup=backup, last_good=None)


@pytest.mark.parametrize(
    ("reference", "tag"),
    [
        ("127.0.0.1:5000/mcp/app:v2", "v2"),
        ("ghcr.io/feustey/mcp:3f2c1ab@sha256:" + "a" * 64, "3f2c1ab"),
        ("127.0.0.1:5000/mcp/app@sha256:" + "b" * 64, None),
        ("mcp", None),
    ],
)
def test_the_tag_is_read_from_the_image_reference(reference: str, tag: str | None) -> None:
    assert image_tag_of(reference) == tag


def test_what_serves_comes_from_the_stack_output_not_the_stack_file() -> None:
    assert serving_tag({"image": "127.0.0.1:5000/mcp/app:v2"}) == "v2"
    with pytest.raises(RollbackError, match="--image-tag"):
        serving_tag({"image": ""})


def test_a_restore_is_one_shot_and_a_tag_rollback_puts_the_build_flag_back() -> None:
    restore = plan_rollback(image_tag=None, backup="latest", last_good=None)
    assert restore.one_shot == (RESTORE_KEY,)
    tag = plan_rollback(image_tag="v1", backup=None, last_good=None)
    assert tag.restore_previous == (BUILD_PATH,) and tag.one_shot == ()
