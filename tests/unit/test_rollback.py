"""The rollback tool's decisions, from the server's release ledger (remote/lib/ledger.sh):
which version is "last good", which tag a prefix names, what `--list` shows."""

from __future__ import annotations

import hashlib
import json
from types import SimpleNamespace

import pytest

from components import release_ledger as ledger
from components.release_ledger import LedgerError
from rollback import RollbackError, choose_target, format_versions, list_versions

REPO = "127.0.0.1:5000/mcp/app"
A, B, C = ("a" * 40, "b" * 40, "c" * 40)  # 40-character commit SHAs, as CI tags images


def digest(tag: str) -> str:
    return "sha256:" + hashlib.sha256(tag.encode()).hexdigest()


def line(event: str, tag: str, *, at: int, via: str = "release", by: str = "ci") -> str:
    return json.dumps(
        {
            "at": f"2026-12-01T10:{at:02d}:00Z",
            "event": event,
            "image": f"{REPO}:{tag}",
            "digest": digest(tag),
            "by": by,
            "via": via,
            "detail": f"{event} {tag}",
            "backup_id": "",
        }
    )


def entries(*lines: str) -> list[ledger.Entry]:
    return ledger.parse("\n".join(lines) + "\n")


def last_good_tag(*lines: str) -> str | None:
    return ledger.last_good(entries(*lines)).tag


def test_last_good_is_the_version_before_the_one_serving() -> None:
    assert last_good_tag(line("served", A, at=1), line("served", B, at=2)) == A


def test_last_good_never_returns_a_version_rolled_back_from_by_a_backup_restore() -> None:
    """A good, B served but bad, `--backup` restored A: B was marked, A serves; nothing else."""
    history = (
        line("served", A, at=1),
        line("served", B, at=2),
        line("rolled-back-from", B, at=3, via="rollback"),
        line("served", A, at=4, via="restore"),
    )
    with pytest.raises(LedgerError, match="no earlier version served healthy"):
        ledger.last_good(entries(*history))


def test_a_second_last_good_does_not_go_back_to_what_the_first_left() -> None:
    """History: A, B, (rollback) A. Then --last-good again: never B; C before A if it served."""
    history = (
        line("served", C, at=0),
        line("served", A, at=1),
        line("served", B, at=2),
        line("rolled-back-from", B, at=3, via="rollback"),
        line("served", A, at=4),
    )
    assert last_good_tag(*history) == C


def test_after_v3_to_v2_a_second_last_good_goes_to_v1_not_v3() -> None:
    v1, v2, v3 = "1" * 40, "2" * 40, "3" * 40
    history = (
        line("served", v1, at=1),
        line("served", v2, at=2),
        line("served", v3, at=3),
        line("rolled-back-from", v3, at=4, via="rollback"),
        line("served", v2, at=5),
        line("rolled-back-from", v2, at=6, via="rollback"),
    )
    # The second rollback marked v2 before it ran; what serves is still v2 until it lands.
    assert last_good_tag(*history) == v1


def test_a_version_whose_release_failed_or_smoke_test_failed_is_not_good() -> None:
    history = (
        line("served", A, at=1),
        line("served", B, at=2),
        line("failed", B, at=3, via="smoke-test"),
        line("failed", C, at=4),
        line("served", B, at=5, via="auto-rollback"),
    )
    # B serves; A is the only other one that served and was never marked.
    assert last_good_tag(*history) == A


def test_last_good_skips_failed_versions_and_returns_the_healthy_one() -> None:
    history = (
        line("served", A, at=1),
        line("served", C, at=2),
        line("failed", C, at=3, via="smoke-test"),
        line("served", B, at=4),
    )
    assert last_good_tag(*history) == A


def test_a_tag_prefix_resolves_to_the_one_full_tag_that_served() -> None:
    history = entries(line("served", A, at=1), line("served", B, at=2))
    assert ledger.resolve_tag(history, "aaaaaaa").tag == A
    assert ledger.resolve_tag(history, A).tag == A


def test_an_ambiguous_prefix_names_the_candidates() -> None:
    a2 = "a" * 7 + "f" * 33
    history = entries(line("served", A, at=1), line("served", a2, at=2))
    with pytest.raises(LedgerError, match="ambiguous") as error:
        ledger.resolve_tag(history, "aaaaaaa")
    assert A in str(error.value) and a2 in str(error.value)


def test_an_unknown_tag_is_refused_naming_the_served_ones() -> None:
    history = entries(line("served", A, at=1))
    with pytest.raises(LedgerError, match="ever served") as error:
        ledger.resolve_tag(history, "deadbee")
    assert A in str(error.value)


def test_a_tag_that_served_with_two_digests_is_refused() -> None:
    """The same tag pushed again with other content: the rollback cannot know which."""
    other = json.loads(line("served", A, at=2))
    other["digest"] = "sha256:" + "9" * 64
    history = entries(line("served", A, at=1), json.dumps(other), line("served", B, at=3))
    with pytest.raises(LedgerError, match="different images"):
        ledger.resolve_tag(history, A[:7])


def test_a_tag_rollback_pins_the_digest_that_served() -> None:
    history = entries(line("served", A, at=1), line("served", B, at=2))
    target = choose_target(history, last_good=False, image_tag=A[:7], backup=None)
    assert target.version is not None
    assert target.version.pinned == f"{A}@{digest(A)}"


def test_a_tag_rollback_to_what_serves_is_refused() -> None:
    history = entries(line("served", A, at=1), line("served", B, at=2))
    with pytest.raises(RollbackError, match="serving now"):
        choose_target(history, last_good=False, image_tag=B, backup=None)


def test_a_version_without_a_recorded_digest_cannot_be_pinned() -> None:
    no_digest = json.loads(line("served", A, at=1))
    no_digest["digest"] = ""
    history = entries(json.dumps(no_digest), line("served", B, at=2))
    with pytest.raises(RollbackError, match="digest"):
        choose_target(history, last_good=True, image_tag=None, backup=None)


def test_a_torn_ledger_line_is_an_error_naming_the_line() -> None:
    with pytest.raises(LedgerError, match="line 2"):
        ledger.parse(line("served", A, at=1) + '\n{"at": "2026-12-01T10:0')


def test_list_shows_newest_first_with_status_digest_and_who() -> None:
    history = entries(
        line("served", A, at=1, by="alice"),
        line("served", B, at=2, by="octocat (run 7)"),
        line("rolled-back-from", B, at=3, via="rollback"),
        line("served", A, at=4, via="restore", by="bob"),
        line("failed", C, at=5),
    )
    rows = list_versions(history)
    assert [row["tag"] for row in rows] == [C, B, A]
    assert [row["status"] for row in rows] == ["failed", "rolled back from", "healthy"]
    assert rows[2]["serving"] and not rows[0]["serving"]
    assert rows[2]["by"] == "bob" and rows[1]["by"] == "octocat (run 7)"
    assert rows[1]["digest"] == digest(B)
    text = format_versions(rows)
    assert text.splitlines()[0].startswith("TAG")
    assert "healthy (serving now)" in text
    assert "rolled back from: rolled-back-from" in text


class RecordingStack:
    """Records the automation calls deploy_pinned makes (each one is a `pulumi` process)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, object]] = []

    def remove_config(self, key: str, *, path: bool = False) -> None:
        self.calls.append(("remove_config", key))

    def set_all_config(self, config: dict, *, path: bool = False) -> None:
        assert path, "the keys are --path keys (mcp:release.author)"
        self.calls.append(("set_all_config", {k: v.value for k, v in config.items()}))

    def up(self, **kwargs: object):
        self.calls.append(("up", kwargs["message"]))
        return SimpleNamespace(outputs={})


@pytest.mark.parametrize("restore_left", [False, True])
def test_a_pinned_deploy_sets_its_config_in_one_command(restore_left: bool) -> None:
    """The version's tag and pin and the caller's settings go in one `pulumi config set-all`;
    a restore key is removed only when the config read before holds one (an interrupted
    restore): each `pulumi config` command costs ~0.3 s of the way back."""
    from rollback import AUTHOR_PATH, PIN_KEY, RESTORE_KEY, TAG_KEY, deploy_pinned

    (version,) = ledger.versions(entries(line("served", "v2", at=1)))
    config = {"mcp:imageTag": {"value": "v3"}} | (
        {RESTORE_KEY: {"value": "x"}} if restore_left else {}
    )
    stack = RecordingStack()
    deploy_pinned(
        stack, version, "rollback: v2", lambda _: None, config=config, settings={AUTHOR_PATH: "ana"}
    )
    expected_set = ("set_all_config", {AUTHOR_PATH: "ana", TAG_KEY: "v2", PIN_KEY: version.pinned})
    removes = [("remove_config", RESTORE_KEY)] if restore_left else []
    assert stack.calls == [*removes, expected_set, ("up", "rollback: v2")]
