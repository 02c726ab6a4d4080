"""The on-call command: what serves, its logs, the audit trail, a deploy freeze, the backups
and a deploy dashboard, for one stack (or several, for the dashboard), over SSH with the
stack's pinned host key and deploy key.

    python oncall.py --stack production status          # what serves, since when, by whom, drift
    python oncall.py --stack production logs --follow   # the app's logs (--since 10m, --lines 200)
    python oncall.py --stack production audit           # pulumi history + the server's records
    python oncall.py --stack production lock acquire -m "incident 42"   # freeze deploys
    python oncall.py --stack production lock status
    python oncall.py --stack production lock release
    python oncall.py --stack production backups             # archives: time, size, image, verified
    python oncall.py --stack production --stack staging dashboard --out deploys.html
    python oncall.py --stack production notify deploy --deploy failure --release-outcome \
        rolled-back --commit 3f2c1ab --actor octocat     # Slack + Telegram (--dry-run: print)

`--json` (before the subcommand) prints JSON for scripts. While deploys are frozen, deploy.sh,
release.sh and restore.sh refuse to run (exit 14) naming who froze them and why; an emergency
rollback passes with `python rollback.py ... --override-freeze`, recorded in the audit.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from components import release_ledger as ledger
from components.release_ledger import LedgerError
from components.server_access import ServerAccessError, config_source
from components.settings import ConfigError, load_notify_settings
from ops import audit, backups, commands, dashboard, notify, status
from ops.stack import OnCallStack, open_stack
from rollback import actor


class OnCallError(Exception):
    """The command cannot proceed; the message says why."""


def say(message: str) -> None:
    print(f"[oncall] {message}", file=sys.stderr, flush=True)


def last_update(target: OnCallStack) -> dict[str, Any] | None:
    history = target.stack.history(page_size=1)
    return (
        audit.update_event(history[0]).to_json()
        | {
            "version": history[0].version,
            "kind": history[0].kind,
        }
        if history
        else None
    )


def read_events(target: OnCallStack) -> list[audit.Event]:
    server = target.server
    return audit.timeline(
        target.stack.history(),
        server.run(commands.ledger(server)),
        server.run(commands.read_file(commands.metrics_path(server))),
        server.run(commands.read_file(commands.history_path(server), only="[freeze] ")),
    )


def cmd_status(target: OnCallStack, args: argparse.Namespace) -> int:
    server = target.server
    remote = json.loads(server.run(commands.status(server, target.app)).strip().splitlines()[-1])
    entries = ledger.parse(server.run(commands.ledger(server)))
    update = last_update(target)
    if update is not None:
        update = {**update, "actor": update["actor"]}
    found = status.build(target.name, repr(server), remote, entries, target.outputs(), update)
    print(
        json.dumps(found, indent=2) if args.json else status.format_status(found, datetime.now(UTC))
    )
    return 0 if found["healthy"] and not found["drift"] else 3


def cmd_logs(target: OnCallStack, args: argparse.Namespace) -> int:
    words = commands.logs(
        target.server, target.app, lines=args.lines, since=args.since, follow=args.follow
    )
    if args.json:
        text = target.server.run(words)
        print(json.dumps([line for line in text.splitlines()], indent=2))
        return 0
    return target.server.stream(words)


def cmd_audit(target: OnCallStack, args: argparse.Namespace) -> int:
    events = read_events(target)
    if args.json:
        runs = audit.with_pull_times(
            audit.parse_metrics(
                target.server.run(commands.read_file(commands.metrics_path(target.server)))
            )
        )
        print(
            json.dumps(
                {
                    "stack": target.name,
                    "events": [e.to_json() for e in events],
                    "metrics": [audit.asdict(r) for r in runs],
                    "summary": audit.summary(events),
                },
                indent=2,
            )
        )
    else:
        print(audit.format_timeline(events))
    return 0


def cmd_lock(target: OnCallStack, args: argparse.Namespace) -> int:
    if args.action == "acquire" and not args.message:
        raise OnCallError(
            "lock acquire needs -m MESSAGE: why deploys are frozen (recorded with your name)"
        )
    if args.message is not None and (len(args.message) > 500 or "\n" in args.message):
        raise OnCallError("-m must be one line of at most 500 characters")
    words = commands.freeze(
        target.server,
        args.action,
        actor=actor(),
        message=args.message if args.action == "acquire" else None,
    )
    result = json.loads(target.server.run(words).strip().splitlines()[-1])
    if args.json:
        print(json.dumps(result, indent=2))
    elif result["frozen"]:
        print(
            f"deploys are FROZEN on {target.name}: by {result['by']} since {result['at']}: "
            f"{result['reason']}"
        )
    else:
        print(f"deploys are allowed on {target.name} (no freeze)")
    return 0


def cmd_backups(target: OnCallStack, args: argparse.Namespace) -> int:
    rows = backups.parse(
        target.server.run(
            commands.backups(target.server, target.backup_dir, verify=not args.no_verify)
        )
    )
    print(json.dumps(rows, indent=2) if args.json else backups.format_backups(rows))
    return 0


def cmd_dashboard(targets: list[OnCallStack], args: argparse.Namespace) -> int:
    stacks = {target.name: read_events(target) for target in targets}
    Path(args.out).write_text(dashboard.render(stacks, datetime.now(UTC)), encoding="utf-8")
    say(f"wrote {args.out} ({', '.join(stacks)})")
    if args.json:
        print(json.dumps({"out": str(args.out), "stacks": dashboard.as_json(stacks)}, indent=2))
    return 0


def notify_verdict(args: argparse.Namespace) -> notify.Verdict:
    if args.workflow == "deploy":
        return notify.deploy_verdict(
            test=args.test, preview=args.preview, staging=args.staging, deploy=args.deploy,
            release=args.release_outcome, release_exit_code=args.release_exit_code,
            smoke_test=args.smoke_test, auto_rollback=args.auto_rollback,
            commit=args.commit, actor=args.actor,
        )  # fmt: skip
    return notify.rollback_verdict(
        rollback=args.rollback, smoke_test=args.smoke_test, target=args.target, actor=args.actor
    )


def cmd_notify(target: OnCallStack, args: argparse.Namespace) -> int:
    """One message with the facts read from the server now, to every configured channel."""
    try:
        settings = load_notify_settings(config_source(target.config))
    except ConfigError as error:
        raise OnCallError(f"the stack's notification keys are not valid: {error}") from error
    verdict = notify_verdict(args)
    server = target.server
    facts = notify.server_facts(
        lambda: server.run(commands.status(server, target.app)),
        lambda: server.run(commands.ledger(server)),
        (ServerAccessError,),
    )
    text = notify.message(target.name, verdict, facts, args.run_url)
    print(text, flush=True)
    if args.summary:
        with open(args.summary, "a", encoding="utf-8") as summary:
            summary.write("### " + text.replace("\n", "\n\n") + "\n")
    if args.dry_run:
        say("--dry-run: nothing sent")
        return 0
    report = notify.deliver(settings, text)
    if not report:
        say("no channel configured (mcp:slackWebhookUrl, mcp:telegramBotToken + mcp:telegram)")
    for line in report:
        say(line)
    if args.json:
        print(json.dumps({"outcome": verdict.outcome, "ok": verdict.ok, "text": text,
                          "channels": report}, indent=2))  # fmt: skip
    return 1 if any(line.startswith("FAILED") for line in report) else 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument(
        "--stack", action="append", required=True, help="stack name (repeat for dashboard)"
    )
    p.add_argument("--json", action="store_true", help="JSON for scripts")
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("status", help="what serves now, health, outputs, drift")
    logs = sub.add_parser("logs", help="the app's compose logs")
    logs.add_argument("--follow", "-f", action="store_true")
    logs.add_argument("--since", help="e.g. 10m, 2h, 2026-12-01T10:00:00Z")
    logs.add_argument("--lines", "-n", type=int, default=100)
    sub.add_parser("audit", help="pulumi history joined with the server's ledger and metrics")
    lock = sub.add_parser("lock", help="the deploy freeze")
    lock.add_argument("action", choices=("acquire", "release", "status"))
    lock.add_argument("-m", "--message", help="why (lock acquire)")
    back = sub.add_parser("backups", help="the backup archives")
    back.add_argument("--no-verify", action="store_true", help="do not read the archives through")
    dash = sub.add_parser("dashboard", help="a self-contained HTML deploy dashboard")
    dash.add_argument("--out", required=True, help="the HTML file to write")
    note = sub.add_parser(
        "notify",
        help="one message (what happened, what failed, what serves now, which backup) to "
        "Slack and Telegram",
    )
    note.add_argument("workflow", choices=("deploy", "rollback"), help="the run to report")
    results = notify.RESULTS
    for option in (
        "--test",
        "--staging",
        "--preview",
        "--deploy",
        "--smoke-test",
        "--auto-rollback",
    ):
        note.add_argument(option, choices=results, default="", help="the job's result")
    note.add_argument("--rollback", choices=results, default="", help="the rollback job's result")
    note.add_argument(
        "--release-outcome", default="", help="release_outcome.py's outcome (deploy job)"
    )
    note.add_argument("--release-exit-code", default="", help="release.sh's exit status")
    note.add_argument("--commit", default="", help="the commit deployed")
    note.add_argument("--target", default="", help="what the rollback went back to")
    note.add_argument("--actor", default="", help="who ran the workflow")
    note.add_argument("--run-url", default="", help="the workflow run's URL")
    note.add_argument("--summary", help="also append the message to this file (job summary)")
    note.add_argument("--dry-run", action="store_true", help="print the message, send nothing")
    return p


def run(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    try:
        if args.command != "dashboard" and len(args.stack) != 1:
            raise OnCallError(f"{args.command} takes one --stack (only dashboard takes several)")
        if args.command == "logs" and args.lines < 1:
            raise OnCallError("--lines must be a positive number")
        targets = []
        for name in args.stack:
            say(f"stack {name!r}")
            targets.append(open_stack(name))
        if args.command == "dashboard":
            return cmd_dashboard(targets, args)
        handler = {
            "status": cmd_status,
            "logs": cmd_logs,
            "audit": cmd_audit,
            "lock": cmd_lock,
            "backups": cmd_backups,
            "notify": cmd_notify,
        }[args.command]
        return handler(targets[0], args)
    except (OnCallError, ServerAccessError, LedgerError, audit.AuditError) as error:
        say(f"ERROR: {error}")
        return 2


if __name__ == "__main__":
    sys.exit(run(sys.argv[1:]))
