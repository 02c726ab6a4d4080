"""`mcp:image.prepare` (the command that writes the build context), the push-login check, the
registry address of the `latest` push, and `mcp:github.apiUrl`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pulumi
import pytest

from components.image import registry_api_address, run_prepare
from tests.unit.conftest import ProgramRun, TestKeys, base_config
from tests.unit.test_settings import load, problems_for, with_field


def test_prepare_is_a_command_and_the_context_may_not_exist_yet(test_keys: TestKeys) -> None:
    config = with_field(base_config(test_keys), "image", "context", "/nonexistent/.build/ctx")
    config = with_field(config, "image", "prepare", ["bash", "app/build.sh", "--context", "x"])
    settings = load(config)
    assert settings.image.prepare == ("bash", "app/build.sh", "--context", "x")
    assert settings.image.context == "/nonexistent/.build/ctx"


def test_without_prepare_a_missing_context_is_refused(test_keys: TestKeys) -> None:
    config = with_field(base_config(test_keys), "image", "context", "/nonexistent/.build/ctx")
    assert any(p.startswith("mcp:image.context:") for p in problems_for(config))
    assert load(base_config(test_keys)).image.prepare == ()


@pytest.mark.parametrize("prepare", ["bash app/build.sh", [], ["bash", ""], ["bash", 3]])
def test_a_prepare_that_is_not_a_list_of_words_is_refused(
    test_keys: TestKeys, prepare: Any
) -> None:
    config = with_field(base_config(test_keys), "image", "prepare", prepare)
    problems = problems_for(config)
    assert any(p.startswith("mcp:image.prepare: must be a command") for p in problems), problems


def test_github_api_url_defaults_to_github_and_is_validated(test_keys: TestKeys) -> None:
    github = load(base_config(test_keys)).github
    assert github is not None and github.api_url is None
    config = with_field(base_config(test_keys), "github", "apiUrl", "http://127.0.0.1:9999/")
    github = load(config).github
    assert github is not None and github.api_url == "http://127.0.0.1:9999/"
    for bad in (
        "127.0.0.1:9999",
        "ftp://github.example.com/",
        "https://x y/",
        "http://github.example.com/",  # the token would travel in clear
        "http://127.0.0.1.example.com/",
    ):
        config = with_field(base_config(test_keys), "github", "apiUrl", bad)
        assert any(p.startswith("mcp:github.apiUrl:") for p in problems_for(config)), bad


def test_the_push_login_is_checked_before_the_build(
    run_program: Callable[..., ProgramRun], test_keys: TestKeys
) -> None:
    config = with_field(base_config(test_keys), "image", "pushUser", "feustey")
    config["registryPushPassword"] = "push-token-value"
    run = run_program(config)
    login = run.get("app-push-login")
    assert login.inputs["create"] == "bash components/scripts/push-login-check.sh"
    assert login.inputs["environment"] == {"MCP_REGISTRY": "ghcr.io", "MCP_PUSH_USER": "feustey"}
    assert "stdin" in login.secret_paths()
    assert "push-token-value" not in login.inputs["create"]
    assert run.depends_on("app-tag-guard", "app-push-login")
    assert run.depends_on("app-build", "app-tag-guard")


def test_the_tag_is_checked_before_every_build_and_again_when_the_sources_change(
    run_program: Callable[..., ProgramRun], test_keys: TestKeys, tmp_path: Path
) -> None:
    """A pushed tag is never pushed again with other content: the guard runs before the build,
    again for a new tag and for new sources under the same tag (which it then refuses)."""
    context = tmp_path / "context"
    context.mkdir()
    (context / "Dockerfile").write_text("FROM scratch\n")
    config = with_field(base_config(test_keys), "image", "context", str(context))
    config = with_field(config, "image", "pushUser", "feustey")
    config["registryPushPassword"] = "push-token-value"
    guard = run_program(config).get("app-tag-guard")
    assert guard.inputs["create"] == (
        "bash components/scripts/tag-guard.sh ghcr.io/feustey/mcp:3f2c1ab feustey"
    )
    assert "stdin" in guard.secret_paths()
    (context / "main.go").write_text("package main\n")
    changed = run_program(config).get("app-tag-guard")
    assert changed.inputs["triggers"][0] == guard.inputs["triggers"][0]
    assert changed.inputs["triggers"][1] != guard.inputs["triggers"][1]


def test_a_pinned_image_is_neither_built_nor_guarded(
    run_program: Callable[..., ProgramRun], test_keys: TestKeys
) -> None:
    config = base_config(test_keys)
    config["imagePin"] = f"{config['imageTag']}@sha256:{'c' * 64}"
    run = run_program(config)
    assert not run.of_type("docker:index/image:Image")
    assert "app-tag-guard" not in run.registered


def test_without_push_credentials_there_is_no_login_step(
    run_program: Callable[..., ProgramRun], test_keys: TestKeys
) -> None:
    run = run_program(base_config(test_keys))
    assert "app-push-login" not in run.registered
    assert run.of_type("docker:index/image:Image")


def test_the_github_provider_takes_the_api_url(
    run_program: Callable[..., ProgramRun], test_keys: TestKeys
) -> None:
    config = with_field(base_config(test_keys), "github", "apiUrl", "http://127.0.0.1:9999/")
    (provider,) = run_program(config).of_type("pulumi:providers:github")
    assert provider.inputs["baseUrl"] == "http://127.0.0.1:9999/"
    (default,) = run_program(base_config(test_keys)).of_type("pulumi:providers:github")
    assert default.inputs.get("baseUrl", "https://api.github.com/") == "https://api.github.com/"


@pytest.mark.parametrize(
    ("registry", "address"),
    [
        ("127.0.0.1:5000", "http://127.0.0.1:5000"),
        ("localhost:5000", "http://localhost:5000"),
        ("ghcr.io", "ghcr.io"),
        ("registry.example.com:443", "registry.example.com:443"),
    ],
)
def test_only_a_loopback_registry_is_spoken_to_in_plain_http(registry: str, address: str) -> None:
    assert registry_api_address(registry) == address


def test_a_failing_prepare_names_the_command_and_shows_its_output(tmp_path: Path) -> None:
    script = tmp_path / "prepare.sh"
    script.write_text("echo 'go build failed: main.go:3: syntax error' >&2\nexit 3\n")
    with pytest.raises(pulumi.RunError) as raised:
        run_prepare(("bash", str(script)), str(tmp_path / "ctx"), "Dockerfile")
    message = str(raised.value)
    assert f"`bash {script}` exited 3" in message
    assert "main.go:3: syntax error" in message and "nothing was built" in message


def test_a_prepare_that_leaves_no_dockerfile_is_refused(tmp_path: Path) -> None:
    with pytest.raises(pulumi.RunError) as raised:
        run_prepare(("true",), str(tmp_path), "Dockerfile")
    assert "'Dockerfile' is not in" in str(raised.value)
    assert "mcp:image.context" in str(raised.value)
