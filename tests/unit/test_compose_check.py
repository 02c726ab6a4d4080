"""Issue 20, item 3: what blue-green and canary need of the compose file is checked by the
program, before anything touches the server, each problem naming the line to change."""

from __future__ import annotations

from pathlib import Path

from components.compose_check import compose_problems
from tests.unit.conftest import ROOT, TestKeys, base_config
from tests.unit.test_settings import load, problems_for

BAD = """\
version: "3.7"
services:
  mcp-api-prod:
    image: ${MCP_IMAGE}
    container_name: mcp-api-prod
    ports:
      - "8000:8000"
    volumes:
      - mcp_data:/data
      - ./logs:/logs
volumes:
  mcp_data:
  shared:
    name: mcp_shared
  outside:
    external: true
"""


def test_the_sample_compose_file_runs_in_both_colours() -> None:
    assert compose_problems(ROOT / "app" / "docker-compose.production.yml") == []


def test_each_problem_names_its_line(tmp_path: Path) -> None:
    compose = tmp_path / "docker-compose.production.yml"
    compose.write_text(BAD)
    problems = compose_problems(compose)
    assert [p.split(": ", 1)[0] for p in problems] == [
        "docker-compose.production.yml:5",  # container_name
        "docker-compose.production.yml:7",  # a fixed host port
        "docker-compose.production.yml:12",  # mcp_data without name:
    ], problems
    assert "remove this line" in problems[0]
    assert "${MCP_HTTP_PORT:-8000}" in problems[1]
    assert "name: <project>_mcp_data" in problems[2]


def test_preview_refuses_such_a_file_for_canary_and_blue_green_only(
    test_keys: TestKeys, tmp_path: Path
) -> None:
    compose = tmp_path / "docker-compose.production.yml"
    compose.write_text(BAD)
    config = base_config(test_keys)
    config["proxy"] = {"image": "ghcr.io/feustey/mcp-proxy:caddy-2.11.9"}
    for strategy in ("canary", "blue-green"):
        config["app"] = {**config["app"], "composeSource": str(compose), "strategy": strategy}
        found = [p for p in problems_for(config) if p.startswith("mcp:app.composeSource: ")]
        assert len(found) == 3, found
        assert all(f"(with app.strategy {strategy})" in p for p in found), found
    config["app"] = {**config["app"], "strategy": "recreate"}  # one container: no problem
    assert load(config).app.strategy == "recreate"
