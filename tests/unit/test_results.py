"""Script results are read strictly: a missing or malformed result line fails the step."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from components.results import ResultError, parse_result
from tests.unit.conftest import ProgramRun, TestKeys, base_config

KEYS = ("image", "backup_id", "previous_image")
GOOD = {"image": "ghcr.io/o/app:v2", "backup_id": "20251017_143025", "previous_image": ""}


def test_the_last_stdout_line_is_the_result() -> None:
    stdout = "[release] a stray line\n" + json.dumps({**GOOD, "health": "{}"}) + "\n"
    assert parse_result("server-release", stdout, KEYS) == GOOD  # "" is a value, not missing


@pytest.mark.parametrize(
    ("stdout", "expected"),
    [
        ("", "printed no result line"),
        ("\n", "printed no result line"),
        (json.dumps(GOOD) + "\n[release] done\n", "is not JSON"),
        ('{"image": "x"', "is not JSON"),
        (json.dumps([GOOD]), "is not a JSON object"),
        (json.dumps({"image": "x", "previous_image": ""}), "lacks backup_id"),
        (json.dumps({**GOOD, "backup_id": 20251017}), "backup_id must be strings"),
        (json.dumps({**GOOD, "image": None}), "image must be strings"),
    ],
    ids=repr,
)
def test_a_missing_or_malformed_result_line_fails_naming_the_step(
    stdout: str, expected: str
) -> None:
    with pytest.raises(ResultError) as raised:
        parse_result("server-release", stdout, KEYS)
    message = str(raised.value)
    assert message.startswith("server-release: ") and expected in message, message
    assert "image, backup_id, previous_image" in message or "strings" in message


def test_a_long_result_line_is_shortened_in_the_message() -> None:
    with pytest.raises(ResultError) as raised:
        parse_result("server-deploy", "x" * 5000, ("staged_image",))
    assert len(str(raised.value)) < 400


@pytest.mark.parametrize(
    ("script", "stdout", "step"),
    [
        ("release.sh", "", "server-release"),
        ("release.sh", '{"image": "ghcr.io/feustey/mcp:v2"}\n', "server-release"),
        ("deploy.sh", "staged\n", "server-deploy"),
    ],
)
def test_the_program_fails_instead_of_exporting_an_empty_output(
    run_program: Callable[..., ProgramRun],
    test_keys: TestKeys,
    script: str,
    stdout: str,
    step: str,
) -> None:
    with pytest.raises(ResultError, match=rf"^{step}: "):
        run_program(base_config(test_keys), stdout={script: stdout})


def test_a_restore_without_its_result_line_fails(
    run_program: Callable[..., ProgramRun], test_keys: TestKeys
) -> None:
    config = base_config(test_keys)
    config["restoreBackup"] = "latest"
    bad = json.dumps({"restored_backup": "20251017_143025", "image": "x"})
    with pytest.raises(ResultError, match=r"^server-restore: .*lacks replaced_backup"):
        run_program(config, stdout={"restore.sh": bad})
