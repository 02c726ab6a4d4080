"""`python oncall.py notify` end to end: deploys through the real engine on the local server,
then the notifier as the workflows call it, with Slack and Telegram stood in on loopback
(`webhook_sink.py`: HTTPS, Slack's incoming webhook; `telegram_standin.py`: the Bot API's
sendMessage, checking the path, the token, the chat and the body). Neither API is reachable
from here: both are stand-ins, and the test checks what each received.

* a good deploy: the program itself posts nothing; after the smoke test, the notifier sends
  one success message, the same text on both channels, naming what serves (read from the
  server) and the backup taken before it;
* a broken version, rolled back automatically by release.sh: the release's outcome is read
  from the engine's events (.github/scripts/release_outcome.py, as the deploy job does); both
  channels get the same facts: what failed (the release's reason, from the ledger), what
  serves now (v1, healthy) and the backup the rollback restored;
* a refused bot token: Slack still gets the message, the command fails naming Telegram, and
  the token is nowhere: not on a command line, in an output, or the stack's state.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.e2e.telegram_standin import TelegramStandIn
from tests.e2e.test_rollback import ledger
from tests.e2e.webhook_sink import WebhookSink

if TYPE_CHECKING:
    from local.target import HttpProbe
    from tests.e2e.conftest import E2EStack

ROOT = Path(__file__).resolve().parents[2]
CHAT_ID = "-1001234567890"
RUN_URL = "https://github.com/feustey/mcp/actions/runs/4242"


def bot_token() -> str:
    return f"{secrets.randbelow(10**9) + 10**9}:AA{secrets.token_urlsafe(30)}"


@pytest.fixture
def slack(tmp_path: Path) -> Iterator[WebhookSink]:
    sink = WebhookSink(tmp_path).start()
    yield sink
    sink.stop()


@pytest.fixture
def telegram() -> Iterator[TelegramStandIn]:
    standin = TelegramStandIn(bot_token(), CHAT_ID).start()
    yield standin
    standin.stop()


def notify_stack(
    make_stack: Callable[..., E2EStack], slack: WebhookSink, telegram: TelegramStandIn, name: str
) -> tuple[E2EStack, str]:
    e2e = make_stack(name)
    webhook = slack.url(f"/services/T0E2E/B0E2E/{secrets.token_hex(12)}")
    e2e.stack.set_config("mcp:slackWebhookUrl", webhook, secret=True)
    e2e.stack.set_config("mcp:telegramBotToken", telegram.token, secret=True)
    e2e.stack.set_config("mcp:telegram.chatId", CHAT_ID)
    e2e.stack.set_config("mcp:telegram.apiUrl", telegram.api_url)
    e2e.secret_values += [webhook, telegram.token]
    return e2e, webhook


class ArgvWatch:
    """Every command line of the machine while the notifier runs (/proc/*/cmdline)."""

    def __init__(self) -> None:
        self.seen: set[str] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def _watch(self) -> None:
        while not self._stop.is_set():
            for entry in os.scandir("/proc"):
                if entry.name.isdigit():
                    with contextlib.suppress(OSError):
                        self.seen.add(
                            Path(entry.path, "cmdline").read_bytes().decode(errors="replace")
                        )
            time.sleep(0.05)

    def __enter__(self) -> ArgvWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def notify(
    e2e: E2EStack, slack: WebhookSink, *args: str
) -> tuple[subprocess.CompletedProcess[str], ArgvWatch]:
    """`python oncall.py --stack S notify ...`, trusting the sink's certificate."""
    env = {**e2e.stack.env, "SSL_CERT_FILE": str(slack.ca_bundle)}
    with ArgvWatch() as watch:
        proc = subprocess.run(
            [sys.executable, str(ROOT / "oncall.py"), "--stack", e2e.stack.name, "notify", *args],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False,
            stdin=subprocess.DEVNULL,
        )  # fmt: skip
    e2e.stack.log += [proc.stdout, proc.stderr]
    return proc, watch


def slack_texts(slack: WebhookSink) -> list[str]:
    return [str(json.loads(post.body)["text"]) for post in slack.posts]


def fields(text: str) -> dict[str, str]:
    """`What failed`, `Serving now`, `Backup`, `Run`: the facts under the headline."""
    return dict(line.split(": ", 1) for line in text.splitlines()[1:])


def assert_token_nowhere(e2e: E2EStack, watch: ArgvWatch, *tokens: str) -> None:
    export = e2e.stack.export()
    for token in tokens:
        assert token not in export, "a notification secret is in the stack state in plain text"
        for text in e2e.stack.log:
            assert token not in text, "a notification secret is in an output"
        for argv in watch.seen:
            assert token not in argv, f"a notification secret is on a command line: {argv!r}"
    for value in e2e.secret_values:
        assert value not in export


def test_success_is_told_after_the_smoke_test_on_both_channels(
    make_stack: Callable[..., E2EStack],
    slack: WebhookSink,
    telegram: TelegramStandIn,
    sample_images: dict[str, str],
    http: HttpProbe,
) -> None:
    e2e, webhook = notify_stack(make_stack, slack, telegram, "notify-ok")
    e2e.up()
    # The program posts nothing: its message would go out before the smoke test.
    assert slack.posts == [] and telegram.messages == [] and telegram.paths == []
    assert e2e.served_version(http) == "v1"  # the smoke test, as the workflow's

    started = time.monotonic()
    proc, watch = notify(
        e2e, slack, "deploy", "--test", "success", "--preview", "success", "--deploy", "success",
        "--release-outcome", "released", "--release-exit-code", "0", "--smoke-test", "success",
        "--auto-rollback", "skipped", "--commit", "v1", "--actor", "octocat",
        "--run-url", RUN_URL,
    )  # fmt: skip
    took = time.monotonic() - started
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "slack: sent" in proc.stderr and "telegram: sent" in proc.stderr, proc.stderr

    (text,) = slack_texts(slack)
    (message,) = telegram.messages
    assert message.text == text and message.chat_id == CHAT_ID, (message, text)
    assert message.content_type == "application/json" and telegram.refused == []
    assert telegram.paths == [f"/bot{telegram.token}/sendMessage"]
    assert slack.posts[0].path == webhook.removeprefix(slack.url(""))
    assert text.splitlines()[0] == (
        f"MCP {e2e.stack.name}: ✅ v1 by octocat is deployed and passed the smoke test."
    )
    facts = fields(text)
    assert facts["What failed"] == "nothing"
    assert facts["Serving now"].startswith(sample_images["v1"]), text
    assert "(HEALTHY: " in facts["Serving now"] and '"version":"v1"' in facts["Serving now"]
    backup_id = e2e.stack.outputs()["backup_id"]
    assert facts["Backup"].startswith(f"{backup_id}, taken right before v1 was released"), text
    assert facts["Run"] == RUN_URL
    assert proc.stdout.strip() == text  # the same text in the job's log
    assert_token_nowhere(e2e, watch, telegram.token, webhook)
    print(f"notify (status.sh + ledger over SSH, Slack + Telegram): {took:.1f} s")


def test_an_automatic_rollback_gives_the_same_facts_on_both_channels(
    make_stack: Callable[..., E2EStack],
    slack: WebhookSink,
    telegram: TelegramStandIn,
    sample_images: dict[str, str],
    http: HttpProbe,
    tmp_path: Path,
) -> None:
    e2e, webhook = notify_stack(make_stack, slack, telegram, "notify-rollback")
    e2e.up()  # v1
    # The broken version, as the deploy job runs it: the engine's events to a file, then the
    # release's outcome read from them.
    events = tmp_path / "pulumi-up-events.jsonl"
    e2e.set_tag("broken-500")
    e2e.stack.env["PULUMI_DEBUG_COMMANDS"] = "true"
    failed = e2e.up("--event-log", str(events), check=False)
    assert failed.returncode != 0
    assert e2e.served_version(http) == "v1"
    outputs = tmp_path / "github-output"
    subprocess.run(
        [sys.executable, str(ROOT / ".github/scripts/release_outcome.py"), "--event-log",
         str(events), "--update-outcome", "failure", "--github-output", str(outputs)],
        check=True, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    release = dict(line.split("=", 1) for line in outputs.read_text().splitlines())
    assert release == {"outcome": "rolled-back", "exit-code": "10"}

    proc, watch = notify(
        e2e, slack, "deploy", "--test", "success", "--preview", "success", "--deploy", "failure",
        "--release-outcome", release["outcome"], "--release-exit-code", release["exit-code"],
        "--smoke-test", "skipped", "--auto-rollback", "skipped", "--commit", "broken-500",
        "--actor", "octocat", "--run-url", RUN_URL,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (text,) = slack_texts(slack)
    (message,) = telegram.messages
    assert message.text == text  # the same facts, word for word
    print(f"\n{text}")
    assert text.splitlines()[0] == (
        f"MCP {e2e.stack.name}: ⏪ deploy of broken-500 by octocat failed its health check and "
        "was AUTOMATICALLY ROLLED BACK; the previous version is serving."
    )
    facts = fields(text)
    records = ledger(e2e)
    failed_entry = [r for r in records if r["event"] == "failed"][-1]
    restored = records[-1]
    assert restored["event"] == "served" and restored["via"] == "auto-rollback", records[-2:]
    # What failed: the release and its reason, as release.sh recorded it.
    assert facts["What failed"] == (
        "the release of broken-500 was unhealthy (release.sh exit 10): "
        f"{failed_entry['image']}: {failed_entry['detail']}"
    )
    assert "broken-500" in failed_entry["image"] and failed_entry["detail"]
    # What serves now: v1, healthy, put back by the automatic rollback.
    assert facts["Serving now"].startswith(sample_images["v1"]), text
    assert "(HEALTHY: " in facts["Serving now"] and "via auto-rollback" in facts["Serving now"]
    # Which backup: the one the failed release took and the rollback restored.
    assert facts["Backup"].startswith(
        f"{restored['backup_id']}, restored by the automatic rollback"
    ), text
    assert restored["backup_id"] == failed_entry["backup_id"] != ""

    # A refused bot token: Slack still gets the message; the command fails naming Telegram,
    # never the token.
    wrong = bot_token()
    e2e.stack.set_config("mcp:telegramBotToken", wrong, secret=True)
    e2e.secret_values.append(wrong)
    proc, watch2 = notify(e2e, slack, "rollback", "--rollback", "success", "--smoke-test",
                          "success", "--target", "last-good", "--actor", "octocat")  # fmt: skip
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "slack: sent" in proc.stderr
    assert "FAILED telegram: the message was not delivered (HTTP 401: Unauthorized)" in proc.stderr
    assert len(slack.posts) == 2 and len(telegram.messages) == 1
    assert telegram.refused == [(401, "Unauthorized")]
    watch.seen |= watch2.seen
    assert_token_nowhere(e2e, watch, telegram.token, wrong, webhook)
