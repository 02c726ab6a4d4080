"""Settings as data: each `mcp:*` key is one row; the copies of the key list cannot drift."""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml

from components import config_keys
from components.config_keys import KEYS, PRODUCTION_MARKERS, README_MARKERS
from tests.unit.conftest import ROOT, TestKeys, base_config
from tests.unit.test_settings import problems_for

FIX = "run `.venv/bin/python -m components.config_keys` and commit the result"


def between(text: str, start: str, end: str) -> str:
    return text.split(start + "\n", 1)[1].split("\n" + end, 1)[0]


def test_the_readme_key_table_is_made_from_the_rows() -> None:
    readme = (ROOT / "README.md").read_text()
    assert between(readme, *README_MARKERS) == config_keys.readme_table(), FIX
    section = readme.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    for row in KEYS:
        if row.kind != "object":
            assert f"| `mcp:{row.name}` |" in section, row.name


@pytest.mark.parametrize("stack", ["production", "staging"])
def test_the_production_header_lists_exactly_the_secret_rows(stack: str) -> None:
    text = (ROOT / f"Pulumi.{stack}.yaml").read_text()
    assert between(text, *PRODUCTION_MARKERS) == config_keys.production_header_secrets(), FIX
    named = set(re.findall(r"--secret mcp:([A-Za-z]+)", text))
    assert named == {row.name for row in KEYS if row.kind == "secret"}


@pytest.mark.parametrize("stack", ["production", "staging"])
def test_every_key_of_the_production_stack_is_a_row(stack: str) -> None:
    config = yaml.safe_load((ROOT / f"Pulumi.{stack}.yaml").read_text())["config"]
    names = set()
    for key, value in config.items():
        name = key.removeprefix("mcp:")
        names.add(name)
        if isinstance(value, dict):
            names |= {f"{name}.{field}" for field in value}
    assert names - set(config_keys.BY_NAME) == set()


def test_every_row_is_read_by_the_settings_and_every_key_read_is_a_row() -> None:
    source = (ROOT / "components" / "settings.py").read_text()
    for row in KEYS:
        assert f'"{row.name}"' in source or f'f"{row.object}.{{' in source, row.name
    for row in KEYS:  # an object's fields are rows of their own
        if row.object is not None:
            assert config_keys.key(row.object).kind == "object", row.name
    with pytest.raises(KeyError):
        config_keys.key("app.unknownKey")


@pytest.mark.parametrize(
    "row", [row for row in KEYS if row.kind == "int"], ids=lambda row: row.name
)
def test_int_rows_give_the_range_default_and_example_of_the_messages(
    test_keys: TestKeys, row: config_keys.Key
) -> None:
    """A value past the row's range is refused naming the range and the row's example; the
    row's default is in range."""
    assert row.low <= row.default <= row.high and row.low <= int(row.example) <= row.high
    config: dict[str, Any] = base_config(test_keys)
    assert row.object is not None
    config.setdefault("proxy", {"image": "ghcr.io/feustey/mcp-proxy:caddy-2.11.9"})
    config.setdefault(row.object, {})
    if row.object in ("proxy", "canary"):
        config["app"] = {**config["app"], "strategy": "canary"}
    config[row.object] = {**config[row.object], row.name.split(".", 1)[1]: row.high + 1}
    (problem,) = [p for p in problems_for(config) if p.startswith(f"mcp:{row.name}: ")]
    assert f"must be between {row.low} and {row.high}" in problem
    assert problem.endswith(f"Example: {row.example}")
