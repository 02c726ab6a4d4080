"""ops/notify.py: the verdict of a run from its jobs' results, the one message built from the
server's facts, and the requests to Slack and Telegram (shape, no secret on a command line,
the token redacted from every error), against throw-away loopback HTTP servers."""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest

from components import release_ledger as ledger
from components.settings import ConfigError, MappingConfigSource, load_notify_settings
from ops import notify

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "123456789:AAH-secret_token_value_0123456789ab"
SHA = "3f2c1ab" + "0" * 33
IMAGE_V1 = "127.0.0.1:5000/mcp/app:v1@sha256:" + "1" * 64
IMAGE_BAD = f"127.0.0.1:5000/mcp/app:{SHA}"


def entry(event: str, image: str, via: str, detail: str, backup: str) -> dict[str, str]:
    return {
        "at": "2026-12-01T10:00:00Z", "event": event, "image": image, "digest": "",
        "by": "mcp-ci (run 42)", "via": via, "detail": detail, "backup_id": backup,
    }  # fmt: skip


def facts_after_an_automatic_rollback() -> notify.ServerFacts:
    lines = [
        entry("served", IMAGE_V1, "release", "healthy", "20261201_095900"),
        entry("failed", IMAGE_BAD, "release", "health check: HTTP 500 after 3 attempts",
              "20261201_100000"),
        entry("served", IMAGE_V1, "auto-rollback", f"healthy again after {IMAGE_BAD} failed",
              "20261201_100000"),
    ]  # fmt: skip
    status = {"running_image": IMAGE_V1, "healthy": True, "health": '{"status":"ok"}'}
    return notify.server_facts(
        lambda: "log line\n" + json.dumps(status),
        lambda: "\n".join(json.dumps(line) for line in lines),
        (OSError,),
    )


def deploy(**results: str) -> notify.Verdict:
    base = {
        "test": "success", "preview": "success", "deploy": "success", "release": "released",
        "release_exit_code": "0", "smoke_test": "success", "auto_rollback": "skipped",
        "commit": SHA, "actor": "octocat",
    }  # fmt: skip
    return notify.deploy_verdict(**{**base, **results})


# --------------------------------------------------------------------------- verdicts


@pytest.mark.parametrize(
    ("results", "outcome", "says"),
    [
        ({}, "deployed", "3f2c1ab by octocat is deployed and passed the smoke test"),
        ({"deploy": "failure", "release": "rolled-back", "release_exit_code": "10",
          "smoke_test": "skipped"}, "rolled-back",
         "failed its health check and was AUTOMATICALLY ROLLED BACK"),
        ({"deploy": "failure", "release": "rollback-failed", "release_exit_code": "11",
          "smoke_test": "skipped"}, "rollback-failed", "the app is probably DOWN"),
        ({"deploy": "failure", "release": "release-failed", "release_exit_code": "6",
          "smoke_test": "skipped"}, "release-failed", "release.sh exit 6"),
        ({"deploy": "failure", "release": "not-released", "smoke_test": "skipped"},
         "not-released", "failed before the release"),
        ({"smoke_test": "failure", "auto_rollback": "success"}, "smoke-test-rolled-back",
         "AUTOMATICALLY ROLLED BACK to the last good version"),
        ({"smoke_test": "failure", "auto_rollback": "failure"}, "smoke-test-rollback-failed",
         "the automatic rollback to the last good version failed: act now"),
        ({"smoke_test": "failure", "auto_rollback": "skipped"}, "smoke-test-failed",
         "no rollback ran (skipped)"),
        ({"staging": "failure", "preview": "skipped", "deploy": "skipped",
          "smoke_test": "skipped"}, "not-released",
         "3f2c1ab by octocat failed on staging (its deploy or its smoke test); nothing reached "
         "production"),
        ({"preview": "failure", "deploy": "skipped", "smoke_test": "skipped"}, "not-released",
         "the preview of 3f2c1ab by octocat failed; nothing was deployed"),
        ({"test": "failure", "preview": "skipped", "deploy": "skipped", "smoke_test": "skipped"},
         "not-released", "tests failed for 3f2c1ab"),
        ({"deploy": "cancelled", "smoke_test": "skipped"}, "incomplete", "did not finish"),
    ],
)  # fmt: skip
def test_the_deploy_runs_verdict_follows_its_jobs(
    results: dict[str, str], outcome: str, says: str
) -> None:
    verdict = deploy(**results)
    assert verdict.outcome == outcome
    assert says in verdict.headline, verdict.headline
    assert verdict.ok is (outcome == "deployed")


def test_the_rollback_runs_verdict() -> None:
    ok = notify.rollback_verdict(rollback="success", smoke_test="success", target="latest",
                                 actor="octocat")  # fmt: skip
    assert ok.ok and "ROLLED BACK by octocat to latest; smoke test passed" in ok.headline
    smoke = notify.rollback_verdict(rollback="success", smoke_test="failure", target="v1",
                                    actor="octocat")  # fmt: skip
    assert not smoke.ok and "but the smoke test failure: act now" in smoke.headline
    failed = notify.rollback_verdict(rollback="failure", smoke_test="skipped", target="",
                                     actor="octocat")  # fmt: skip
    assert "rollback by octocat failure (target: invalid input): act now" in failed.headline


# --------------------------------------------------------------------------- the message


def test_an_automatic_rollback_message_says_what_failed_what_serves_and_which_backup() -> None:
    verdict = deploy(deploy="failure", release="rolled-back", release_exit_code="10",
                     smoke_test="skipped")  # fmt: skip
    text = notify.message("production", verdict, facts_after_an_automatic_rollback(),
                          "https://github.com/o/r/actions/runs/1")  # fmt: skip
    lines = text.splitlines()
    assert lines[0].startswith("MCP production: ⏪ deploy of 3f2c1ab by octocat failed")
    assert lines[1] == (
        f"What failed: the release of 3f2c1ab was unhealthy (release.sh exit 10): {IMAGE_BAD}: "
        "health check: HTTP 500 after 3 attempts"
    )
    assert lines[2].startswith(f"Serving now: {IMAGE_V1} (HEALTHY: " + '{"status":"ok"})')
    assert "deployed by mcp-ci (run 42) via auto-rollback" in lines[2]
    assert lines[3].startswith("Backup: 20261201_100000, restored by the automatic rollback")
    assert lines[4] == "Run: https://github.com/o/r/actions/runs/1"


def test_a_success_names_the_backup_taken_before_it() -> None:
    status = {"running_image": IMAGE_BAD, "healthy": True, "health": "ok"}
    lines = [entry("served", IMAGE_BAD, "release", "healthy", "20261201_110000")]
    facts = notify.server_facts(
        lambda: json.dumps(status), lambda: json.dumps(lines[0]), (OSError,)
    )
    text = notify.message("production", deploy(), facts)
    assert "What failed: nothing" in text
    assert f"Backup: 20261201_110000, taken right before {SHA} was released" in text
    assert "rollback.py --backup 20261201_110000" in text


def test_an_unreachable_server_is_said_and_the_message_still_goes() -> None:
    def refused() -> str:
        raise OSError("ssh mcp@203.0.113.9:22 failed: Connection refused")

    facts = notify.server_facts(refused, refused, (OSError,))
    text = notify.message("production", deploy(), facts)
    assert "Serving now: unknown: the server could not be read (ssh mcp@203.0.113.9:22" in text
    assert "Backup: unknown (the server could not be read)" in text


def test_a_smoke_test_rollback_names_the_version_rolled_back_from() -> None:
    lines = [
        entry("served", IMAGE_BAD, "release", "healthy", "20261201_110000"),
        entry("rolled-back-from", IMAGE_BAD, "smoke-test", f"smoke test failed for {SHA}", ""),
        entry("served", IMAGE_V1, "release", "healthy", "20261201_110500"),
    ]
    facts = notify.server_facts(
        lambda: json.dumps({"running_image": IMAGE_V1, "healthy": True, "health": "ok"}),
        lambda: "\n".join(json.dumps(line) for line in lines),
        (OSError,),
    )
    verdict = deploy(smoke_test="failure", auto_rollback="success")
    text = notify.message("production", verdict, facts)
    assert f"{IMAGE_BAD} marked rolled back from (smoke test failed for {SHA})" in text
    assert f"Serving now: {IMAGE_V1}" in text and "Backup: 20261201_110500" in text


# --------------------------------------------------------------------------- settings


def notify_config(**extra: Any) -> MappingConfigSource:
    values = {
        "slackWebhookUrl": "https://hooks.example.invalid/services/T0/B0/hook-secret",
        "telegramBotToken": TOKEN,
        "telegram": {"chatId": "-1001234567890"},
        **extra,
    }
    return MappingConfigSource(values, secret_keys=("slackWebhookUrl", "telegramBotToken"))


def test_notify_settings_default_to_the_public_bot_api() -> None:
    settings = load_notify_settings(notify_config())
    assert settings.telegram_api_url == "https://api.telegram.org"
    assert settings.telegram_chat_id == "-1001234567890"
    assert TOKEN not in repr(settings) and "hook-secret" not in repr(settings)


@pytest.mark.parametrize(
    ("extra", "problem"),
    [
        ({"telegramBotToken": "not-a-token"}, "mcp:telegramBotToken: is not a Telegram bot token"),
        ({"telegram": {"chatId": "general"}}, "mcp:telegram.chatId: must be a numeric"),
        ({"telegram": {"chatId": "-100", "apiUrl": "http://api.example.com"}},
         "mcp:telegram.apiUrl: must be the https:// base URL"),
        ({"telegram": {}}, "mcp:telegram.chatId: is missing (mcp:telegramBotToken is set)"),
    ],
)  # fmt: skip
def test_bad_telegram_keys_are_refused_naming_the_key_never_the_token(
    extra: dict[str, Any], problem: str
) -> None:
    with pytest.raises(ConfigError) as error:
        load_notify_settings(notify_config(**extra))
    assert problem in str(error.value)
    assert TOKEN not in str(error.value)


def test_a_token_in_plain_text_is_refused() -> None:
    source = MappingConfigSource(
        {"telegramBotToken": TOKEN, "telegram": {"chatId": "42"}}, secret_keys=()
    )
    with pytest.raises(ConfigError, match="mcp:telegramBotToken: is stored in plain text"):
        load_notify_settings(source)


# --------------------------------------------------------------------------- requests


class Recorder(BaseHTTPRequestHandler):
    received: ClassVar[list[tuple[str, str, bytes]]] = []
    answers: ClassVar[list[tuple[int, bytes]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).received.append((self.path, self.headers["Content-Type"], body))
        status, answer = type(self).answers.pop(0) if type(self).answers else (200, b"ok")
        self.send_response(status)
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def loopback() -> Iterator[str]:
    Recorder.received, Recorder.answers = [], []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


def test_the_same_text_goes_to_slack_and_to_the_bot_api(loopback: str) -> None:
    Recorder.answers = [(200, b"ok"), (200, b'{"ok":true,"result":{"message_id":1}}')]
    settings = load_notify_settings(
        notify_config(
            slackWebhookUrl=f"{loopback}/services/T0/B0/hook-secret".replace("http:", "https:"),
            telegram={"chatId": "-1001234567890", "apiUrl": loopback},
        )
    )
    settings = type(settings)(
        slack_webhook_url=f"{loopback}/services/T0/B0/hook-secret",  # plain http on loopback
        telegram_bot_token=settings.telegram_bot_token,
        telegram_chat_id=settings.telegram_chat_id,
        telegram_api_url=settings.telegram_api_url,
    )
    text = 'MCP production: ✅ "quoted" \\ back\nnext line'
    assert notify.deliver(settings, text) == ["slack: sent", "telegram: sent"]
    (slack_path, slack_type, slack_body), (tg_path, tg_type, tg_body) = Recorder.received
    assert slack_path == "/services/T0/B0/hook-secret"
    assert slack_type.startswith("application/json")
    assert json.loads(slack_body) == {"text": text}
    assert tg_path == f"/bot{TOKEN}/sendMessage"
    assert tg_type.startswith("application/json")
    assert json.loads(tg_body) == {
        "chat_id": "-1001234567890", "text": text, "disable_web_page_preview": True,
    }  # fmt: skip


def test_a_refused_token_is_reported_without_the_token(loopback: str) -> None:
    Recorder.answers = [(401, b'{"ok":false,"error_code":401,"description":"Unauthorized"}')]
    request = notify.telegram_request(loopback, TOKEN, "42", "hello")
    with pytest.raises(notify.NotifyError) as error:
        notify.send(request, attempts=1)
    assert str(error.value) == ("telegram: the message was not delivered (HTTP 401: Unauthorized)")
    assert TOKEN not in str(error.value) and "123456789" not in str(error.value)


def test_an_unreachable_api_is_retried_and_reported_without_the_token() -> None:
    request = notify.telegram_request(f"http://127.0.0.1:9/{TOKEN}", TOKEN, "42", "hello")
    with pytest.raises(notify.NotifyError) as error:
        notify.send(request, attempts=2, pause_s=0)
    assert "could not connect" in str(error.value)
    assert TOKEN not in str(error.value)


def test_a_5xx_is_retried_then_delivered(loopback: str) -> None:
    Recorder.answers = [(502, b"bad gateway"), (200, b"ok")]
    notify.send(notify.slack_request(f"{loopback}/hook", "hi"), pause_s=0)
    assert len(Recorder.received) == 2


def test_a_long_text_is_cut_to_the_bot_apis_limit() -> None:
    request = notify.telegram_request("https://api.telegram.org", TOKEN, "42", "x" * 5000)
    assert len(request.body["text"]) == notify.TELEGRAM_MAX_CHARS


def test_no_secret_reaches_a_command_line() -> None:
    """The notifier starts no process to send (urllib in this process): no curl, no argv."""
    tree = ast.parse((ROOT / "ops" / "notify.py").read_text())
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import)
                for alias in node.names}  # fmt: skip
    imported |= {node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert not imported & {"subprocess", "pty", "shlex", "multiprocessing"}, imported
    calls = {node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute)}
    assert not calls & {"system", "popen", "execv", "execvp", "spawnv", "run"}, calls
    for workflow in ("deploy-production.yml", "rollback.yml"):
        text = (ROOT / ".github" / "workflows" / workflow).read_text()
        jobs = text.split("jobs:", 1)[1]
        assert not re.search(r"(SLACK|TELEGRAM)_[A-Z_]+|secrets\.\w*(SLACK|TELEGRAM)", jobs), (
            workflow
        )
        assert 'python oncall.py --stack "$PULUMI_STACK" notify' in jobs, workflow


def test_notify_dry_run_help_is_reachable() -> None:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "oncall.py"), "--stack", "x", "notify", "--help"],
        capture_output=True, text=True, check=False, cwd=ROOT,
    )  # fmt: skip
    assert proc.returncode == 0 and "--release-outcome" in proc.stdout


def test_ledger_entries_parse_as_the_notifier_reads_them() -> None:
    facts = facts_after_an_automatic_rollback()
    assert isinstance(facts.serving_entry, ledger.Entry)
    assert facts.serving_entry.via == "auto-rollback"


def test_the_pull_request_preview_gives_the_notification_secrets_valid_placeholders() -> None:
    """tests.yml's throwaway preview stack gets a placeholder for each production secret; the
    settings validate the notification secrets' shape, so the placeholders must pass."""
    text = (ROOT / ".github" / "workflows" / "tests.yml").read_text()
    placeholders = dict(re.findall(r'(mcp:\w+)\) value="([^"$]*)"', text))
    source = MappingConfigSource(
        {
            "slackWebhookUrl": placeholders["mcp:slackWebhookUrl"],
            "telegramBotToken": placeholders["mcp:telegramBotToken"],
            "telegram": {"chatId": "-1001234567890"},
        },
        secret_keys=("slackWebhookUrl", "telegramBotToken"),
    )
    settings = load_notify_settings(source)
    assert settings.telegram_bot_token == placeholders["mcp:telegramBotToken"]
