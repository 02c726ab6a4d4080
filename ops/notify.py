"""`oncall.py notify`: the one notification of a deploy or rollback run, to Slack and Telegram.

The workflows call it once, at the end of a run, with the results of their jobs (and the
release's outcome, .github/scripts/release_outcome.py); it decides what happened
(`deploy_verdict`, `rollback_verdict`), reads the facts from the server itself (what serves
now and its health: status.sh; what failed and which backup: the release ledger), builds ONE
text (`message`) and posts that same text to every configured channel:

* Slack: `POST <mcp:slackWebhookUrl>` with `{"text": ...}` (an incoming webhook);
* Telegram: `POST <mcp:telegram.apiUrl>/bot<mcp:telegramBotToken>/sendMessage` with
  `{"chat_id": <mcp:telegram.chatId>, "text": ...}` (the Bot API).

The webhook URL and the bot token are Pulumi secrets read through the Automation API; they
travel only inside the HTTPS request made here (urllib, no subprocess, so never on a command
line), and every error names the channel with those values replaced by `<redacted>`.
"""

from __future__ import annotations

import json
import os
import re
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from components import release_ledger as ledger
from components.settings import NotifySettings

TELEGRAM_MAX_CHARS = 4096  # the Bot API refuses a longer text
TIMEOUT_S = 20
ATTEMPTS = 3
REDACTED = "<redacted>"

# Job results as GitHub Actions reports them (needs.<job>.result).
RESULTS = ("success", "failure", "cancelled", "skipped", "")


class NotifyError(Exception):
    """A channel refused or could not be reached; the message holds no secret."""


@dataclass(frozen=True)
class Verdict:
    """What happened in a run, decided from its jobs' results."""

    outcome: str  # e.g. deployed, rolled-back, smoke-test-rolled-back, rollback
    ok: bool  # the run ended as intended (nothing for on-call to do)
    headline: str  # one line, after "MCP <stack>: "
    what_failed: str  # "" when nothing failed
    failed_image_hint: str = ""  # the commit (tag) that failed, to find it in the ledger


@dataclass(frozen=True)
class ServerFacts:
    """What the server says now (read over SSH); `error` when it could not be read."""

    serving: str = ""  # the image running now
    healthy: bool | None = None
    health: str = ""
    serving_entry: ledger.Entry | None = None  # the ledger's newest "served" line
    entries: tuple[ledger.Entry, ...] = ()
    error: str = ""


# --------------------------------------------------------------------------- verdicts


def _short(commit: str) -> str:
    """A commit SHA as people quote it (7 characters); any other tag whole."""
    return commit[:7] if re.fullmatch(r"[0-9a-f]{40}", commit) else commit or "?"


def deploy_verdict(
    *,
    test: str,
    preview: str,
    staging: str = "",
    deploy: str,
    release: str,
    release_exit_code: str,
    smoke_test: str,
    auto_rollback: str,
    commit: str,
    actor: str,
) -> Verdict:
    """The deploy workflow's run (deploy-production.yml): the jobs' results and the release's
    outcome (released, rolled-back, rollback-failed, release-failed, not-released, unknown)."""
    who = f"{_short(commit)} by {actor or '?'}"
    if deploy == "failure":
        code = release_exit_code or "none"
        by_release = {
            "rolled-back": Verdict(
                "rolled-back",
                False,
                f"⏪ deploy of {who} failed its health check and was AUTOMATICALLY ROLLED "
                "BACK; the previous version is serving.",
                f"the release of {_short(commit)} was unhealthy (release.sh exit {code})",
                commit,
            ),
            "rollback-failed": Verdict(
                "rollback-failed",
                False,
                f"🚨 deploy of {who} failed its health check AND the automatic rollback "
                "failed: the app is probably DOWN, act now.",
                f"the release of {_short(commit)} was unhealthy and its rollback failed "
                f"(release.sh exit {code})",
                commit,
            ),
            "release-failed": Verdict(
                "release-failed",
                False,
                f"❌ the release of {who} failed (release.sh exit {code}; see "
                "remote/README.md, exit codes); check the server.",
                f"release.sh exited {code} for {_short(commit)}",
                commit,
            ),
            "not-released": Verdict(
                "not-released",
                False,
                f"❌ deploy of {who} failed before the release; the server still runs the "
                "previous version.",
                "pulumi up stopped before the release step (see the deploy job's log)",
            ),
            "released": Verdict(
                "released-then-failed",
                False,
                f"⚠️ {who} was released, but the deploy job failed afterwards.",
                "a step of the deploy job after the release (see its log)",
            ),
        }
        return by_release.get(
            release,
            Verdict(
                "unknown", False,
                f"❌ deploy of {who} failed and the release's outcome is unknown; check the "
                "server.",
                f"the deploy job (release outcome: {release or 'unknown'})", commit,
            ),
        )  # fmt: skip
    if smoke_test == "failure":
        what = f"the smoke test of {_short(commit)} (the public health URL)"
        if auto_rollback == "success":
            return Verdict(
                "smoke-test-rolled-back", False,
                f"⏪ {who} was deployed but failed the smoke test, and was AUTOMATICALLY "
                "ROLLED BACK to the last good version.", what, commit,
            )  # fmt: skip
        if auto_rollback == "failure":
            return Verdict(
                "smoke-test-rollback-failed", False,
                f"🚨 {who} failed the smoke test AND the automatic rollback to the last good "
                "version failed: act now (the 'Rollback Production' workflow).", what, commit,
            )  # fmt: skip
        return Verdict(
            "smoke-test-failed", False,
            f"⚠️ {who} was deployed but the smoke test failed and no rollback ran "
            f"({auto_rollback or 'not run'}); consider the 'Rollback Production' workflow.",
            what, commit,
        )  # fmt: skip
    if staging == "failure":
        return Verdict(
            "not-released", False,
            f"❌ {who} failed on staging (its deploy or its smoke test); nothing reached "
            "production, which still runs the previous version.", "the staging job",
        )  # fmt: skip
    if preview == "failure":
        return Verdict(
            "not-released", False,
            f"❌ the preview of {who} failed; nothing was deployed.", "the preview job",
        )  # fmt: skip
    if test == "failure":
        return Verdict(
            "not-released", False,
            f"❌ tests failed for {who}; nothing was deployed.", "the tests",
        )  # fmt: skip
    if deploy == "success" and smoke_test == "success":
        return Verdict("deployed", True, f"✅ {who} is deployed and passed the smoke test.", "")
    results = f"test {test or '-'}, preview {preview or '-'}, deploy {deploy or '-'}, " + (
        f"smoke test {smoke_test or '-'}"
    )
    return Verdict(
        "incomplete", False,
        f"⚠️ the deploy of {who} did not finish ({results}); check the run.",
        f"no job failed, but the run did not finish ({results})",
    )  # fmt: skip


def rollback_verdict(*, rollback: str, smoke_test: str, target: str, actor: str) -> Verdict:
    """The rollback workflow's run (rollback.yml)."""
    to = target or "?"
    if rollback == "success" and smoke_test == "success":
        return Verdict(
            "rollback", True,
            f"⏪ ROLLED BACK by {actor or '?'} to {to}; smoke test passed.",
            "",
        )  # fmt: skip
    if rollback == "success":
        return Verdict(
            "rollback-smoke-test-failed", False,
            f"⚠️ rolled back by {actor or '?'} to {to}, but the smoke test "
            f"{smoke_test or 'did not run'}: act now.",
            f"the smoke test after the rollback to {to}",
        )  # fmt: skip
    return Verdict(
        "manual-rollback-failed", False,
        f"🚨 rollback by {actor or '?'} {rollback or 'did not run'} (target: "
        f"{target or 'invalid input'}): act now.",
        f"the rollback to {target or 'an invalid target'} (see the run's log)",
    )  # fmt: skip


# --------------------------------------------------------------------------- facts


def server_facts(
    status_line: Callable[[], str], ledger_text: Callable[[], str], errors: tuple[type, ...]
) -> ServerFacts:
    """Reads status.sh's JSON line and the ledger; a failure is kept as the fact `error` (a
    notification is still sent, saying the server could not be read)."""
    try:
        remote = json.loads(status_line().strip().splitlines()[-1])
        entries = tuple(ledger.parse(ledger_text()))
    except (*errors, ValueError, IndexError, ledger.LedgerError) as error:
        return ServerFacts(error=str(error).strip().splitlines()[-1][:300] if str(error) else "")
    serving = next((e for e in reversed(entries) if e.event == "served"), None)
    return ServerFacts(
        serving=str(remote.get("running_image") or ""),
        healthy=bool(remote.get("healthy")),
        health=str(remote.get("health") or ""),
        serving_entry=serving,
        entries=entries,
    )


def _newest(entries: Iterable[ledger.Entry], event: str, hint: str) -> ledger.Entry | None:
    """The newest `event` line, of the image whose tag starts with `hint` when one is given."""
    for entry in reversed(list(entries)):
        if entry.event != event:
            continue
        if not hint or (ledger.image_tag(entry.image) or "").startswith(hint):
            return entry
    return None


def what_failed(verdict: Verdict, facts: ServerFacts) -> str:
    """The verdict's "what failed", with the ledger's record of it (the release's reason, the
    version rolled back from) when the server has one."""
    if verdict.ok:
        return "nothing"
    hint = verdict.failed_image_hint
    detail = verdict.what_failed
    if verdict.outcome in ("rolled-back", "rollback-failed", "release-failed", "unknown"):
        failed = _newest(facts.entries, "failed", hint)
        if failed is not None:
            return f"{detail}: {failed.image}: {failed.detail}"
    if verdict.outcome.startswith("smoke-test") or verdict.outcome == "rollback":
        moved = _newest(facts.entries, "rolled-back-from", hint)
        if moved is not None:
            return f"{detail}: {moved.image} marked rolled back from ({moved.detail})"
    return detail


def serving_now(facts: ServerFacts) -> str:
    if facts.error:
        return f"unknown: the server could not be read ({facts.error})"
    if not facts.serving:
        return "nothing runs on the server"
    health = "HEALTHY" if facts.healthy else "UNHEALTHY"
    line = f"{facts.serving} ({health}: {facts.health[:120]})"
    entry = facts.serving_entry
    if entry is not None:
        line += f"; since {entry.at}, deployed by {entry.by} via {entry.via}"
    return line


def which_backup(facts: ServerFacts) -> str:
    """The backup behind what serves: the one an automatic rollback or a restore brought back,
    or the one taken right before this version was released (restoring it goes back)."""
    if facts.error:
        return "unknown (the server could not be read)"
    entry = facts.serving_entry
    if entry is None or not entry.backup_id:
        return "none recorded in the release ledger"
    if entry.via == "auto-rollback":
        return (
            f"{entry.backup_id}, restored by the automatic rollback (taken right before the "
            "failed release)"
        )
    if entry.via == "restore":
        return f"{entry.backup_id}, restored"
    return (
        f"{entry.backup_id}, taken right before {ledger.image_tag(entry.image) or entry.image} "
        f"was released (`rollback.py --backup {entry.backup_id}` brings back what served before)"
    )


def message(
    stack: str, verdict: Verdict, facts: ServerFacts, run_url: str = "", what: str | None = None
) -> str:
    """The one text every channel gets."""
    lines = [
        f"MCP {stack}: {verdict.headline}",
        f"What failed: {what if what is not None else what_failed(verdict, facts)}",
        f"Serving now: {serving_now(facts)}",
        f"Backup: {which_backup(facts)}",
    ]
    if run_url:
        lines.append(f"Run: {run_url}")
    return "\n".join(lines)


# --------------------------------------------------------------------------- sending


def redact(text: str, secrets: Iterable[str | None]) -> str:
    for secret in sorted((s for s in secrets if s), key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    return text


def ca_file() -> str | None:
    """The CA bundle to trust: $SSL_CERT_FILE, else what pip and curl are given
    ($REQUESTS_CA_BUNDLE, $CURL_CA_BUNDLE); None: the system's."""
    for name in ("SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        value = os.environ.get(name)
        if value and os.path.isfile(value):
            return value
    return None


@dataclass(frozen=True)
class Request:
    channel: str
    url: str  # holds a secret: never shown
    body: dict[str, Any]
    secrets: tuple[str, ...]


def slack_request(webhook_url: str, text: str) -> Request:
    return Request("slack", webhook_url, {"text": text}, (webhook_url,))


def telegram_request(api_url: str, token: str, chat_id: str, text: str) -> Request:
    if len(text) > TELEGRAM_MAX_CHARS:
        text = text[: TELEGRAM_MAX_CHARS - 1] + "…"
    url = f"{api_url.rstrip('/')}/bot{token}/sendMessage"
    body = {"chat_id": chat_id, "text": text, "disable_web_page_preview": True}
    return Request("telegram", url, body, (token, url))


def requests_for(settings: NotifySettings, text: str) -> list[Request]:
    found = []
    if settings.slack_webhook_url:
        found.append(slack_request(settings.slack_webhook_url, text))
    if settings.telegram_bot_token and settings.telegram_chat_id:
        found.append(
            telegram_request(
                settings.telegram_api_url,
                settings.telegram_bot_token,
                settings.telegram_chat_id,
                text,
            )
        )
    return found


def _accepted(request: Request, status: int, answer: str) -> str | None:
    """None when the API took the message, else why not."""
    if request.channel == "telegram":
        try:
            parsed = json.loads(answer)
        except ValueError:
            parsed = {}
        if status == 200 and isinstance(parsed, dict) and parsed.get("ok") is True:
            return None
        description = parsed.get("description") if isinstance(parsed, dict) else None
        return f"HTTP {status}: {description or answer[:200]}"
    return None if 200 <= status < 300 else f"HTTP {status}: {answer[:200]}"


def send(request: Request, *, attempts: int = ATTEMPTS, pause_s: float = 2.0) -> None:
    """POSTs the request's JSON body; retries a connection error, 429 or 5xx. Raises
    NotifyError naming the channel, never the URL or token."""
    data = json.dumps(request.body).encode()
    context = ssl.create_default_context(cafile=ca_file())
    problem = ""
    for attempt in range(1, attempts + 1):
        http = urllib.request.Request(
            request.url, data=data, method="POST",
            headers={"Content-Type": "application/json; charset=utf-8"},
        )  # fmt: skip
        status: int | None = None
        text = ""
        try:
            with urllib.request.urlopen(http, timeout=TIMEOUT_S, context=context) as answer:
                status, text = answer.status, answer.read().decode("utf-8", "replace")
        except urllib.error.HTTPError as error:
            status, text = error.code, error.read().decode("utf-8", "replace")
        except (urllib.error.URLError, OSError) as error:
            problem = f"could not connect: {getattr(error, 'reason', error)}"
        retry = status is None
        if status is not None:
            problem = _accepted(request, status, text) or ""
            if not problem:
                return
            retry = status == 429 or status >= 500
        if not retry or attempt == attempts:
            break
        time.sleep(pause_s)
    raise NotifyError(
        f"{request.channel}: the message was not delivered ({redact(problem, request.secrets)})"
    )


def deliver(settings: NotifySettings, text: str) -> list[str]:
    """Sends `text` to every configured channel; returns one line per channel (sent, or why
    not), without secrets. Every channel is tried even when one fails."""
    report = []
    for request in requests_for(settings, text):
        try:
            send(request)
            report.append(f"{request.channel}: sent")
        except NotifyError as error:
            report.append(f"FAILED {error}")
    return report
