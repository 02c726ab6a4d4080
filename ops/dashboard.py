"""`oncall.py dashboard`: one self-contained HTML page (inline CSS and SVG, no script, nothing
fetched) from the audit timeline and deploy metrics of one or more stacks: a timeline of
deploys and rollbacks per stack, release durations over time as a chart, success rate and
time to recover."""

from __future__ import annotations

from datetime import datetime
from html import escape
from typing import Any

from ops.audit import Event, summary

COLOURS = {
    "success": "#2e7d32",
    "rolled-back": "#f9a825",
    "rollback-failed": "#c62828",
    "failed": "#c62828",
    "frozen": "#6a1b9a",
}
STEP_COLOURS = {
    "backup_s": "#90caf9",
    "pull_s": "#a5d6a7",
    "up_s": "#ffcc80",
    "healthy_s": "#ce93d8",
}

CSS = """
body{font-family:system-ui,sans-serif;margin:2rem;color:#222;background:#fafafa}
h1{margin-bottom:.2rem}
 section{background:#fff;border:1px solid #ddd;border-radius:8px;
padding:1rem 1.5rem;margin:1.5rem 0}
.cards{display:flex;gap:1rem;flex-wrap:wrap}
.card{border:1px solid #ddd;border-radius:6px;padding:.6rem 1rem;min-width:9rem}
.card b{display:block;font-size:1.5rem}
table{border-collapse:collapse;width:100%;font-size:.85rem}
th,td{border-bottom:1px solid #eee;padding:.3rem .5rem;text-align:left;vertical-align:top}
td.result-success{color:#2e7d32}
td.result-rolled-back{color:#b58900}
td.result-failed,td.result-rollback-failed{color:#c62828}
td.result-frozen{color:#6a1b9a}
.legend span{display:inline-block;margin-right:1rem}
.legend i{display:inline-block;width:.8rem;height:.8rem;margin-right:.3rem}
"""


def _fmt_seconds(value: float | None) -> str:
    if value is None:
        return "n/a"
    return f"{value:.1f} s" if value < 120 else f"{value / 60:.1f} min"


def chart(events: list[Event], width: int = 720, height: int = 220) -> str:
    """Release and restore durations over time: one bar per run, stacked by step, its outline
    coloured by outcome; an SVG with a <title> per bar."""
    runs = [e for e in events if e.source == "server" and e.kind in ("release", "restore")]
    if not runs:
        return '<p class="no-data">no release recorded yet</p>'
    top = max((e.duration_s or 0) for e in runs) or 1.0
    left, plot_h = 48, height - 40
    slot = (width - left - 10) / len(runs)
    bar_w = max(4.0, min(36.0, slot * 0.7))
    parts = [
        '<svg class="durations" xmlns="http://www.w3.org/2000/svg" '
        f'width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="release durations over time">',
        f'<line x1="{left}" y1="{plot_h + 10}" x2="{width - 5}" y2="{plot_h + 10}" stroke="#999"/>',
        f'<line x1="{left}" y1="10" x2="{left}" y2="{plot_h + 10}" stroke="#999"/>',
        f'<text x="{left - 6}" y="16" text-anchor="end" font-size="10">{top:.0f}s</text>',
        f'<text x="{left - 6}" y="{plot_h + 10}" text-anchor="end" font-size="10">0</text>',
    ]
    for index, event in enumerate(runs):
        x = left + index * slot + (slot - bar_w) / 2
        total = event.duration_s or 0.0
        timings = event.details.get("timings") or {}
        y = plot_h + 10
        title = escape(
            f"{event.at} {event.what}: {event.result} in {total:.1f}s ("
            + ", ".join(f"{k[:-2]} {v:.1f}s" for k, v in timings.items() if k != "total_s")
            + ")"
        )
        for step, colour in STEP_COLOURS.items():
            if step == "pull_s" or step not in timings:
                continue  # the pull happens in deploy.sh, before the release's own total
            h = plot_h * timings[step] / top
            y -= h
            parts.append(
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar_w:.1f}" height="{h:.1f}" '
                f'fill="{colour}"/>'
            )
        h_total = plot_h * total / top
        parts.append(
            f'<rect class="bar outcome-{escape(event.result)}" data-duration="{total:.3f}" '
            f'data-outcome="{escape(event.result)}" x="{x:.1f}" y="{plot_h + 10 - h_total:.1f}" '
            f'width="{bar_w:.1f}" height="{max(h_total, 1):.1f}" fill="none" '
            f'stroke="{COLOURS.get(event.result, "#555")}" stroke-width="2">'
            f"<title>{title}</title></rect>"
        )
        parts.append(
            f'<text x="{x + bar_w / 2:.1f}" y="{height - 8}" text-anchor="middle" font-size="9">'
            f"{escape(event.at[5:16].replace('T', ' '))}</text>"
        )
    parts.append("</svg>")
    legend = "".join(
        f'<span><i style="background:{c}"></i>{escape(k[:-2])}</span>'
        for k, c in STEP_COLOURS.items()
        if k != "pull_s"
    ) + "".join(
        f'<span><i style="border:2px solid {c}"></i>{escape(k)}</span>' for k, c in COLOURS.items()
    )
    return "".join(parts) + f'<p class="legend">{legend}</p>'


def stack_section(name: str, events: list[Event]) -> str:
    facts = summary(events)
    rate = facts["success_rate"]
    rate_text = "n/a" if rate is None else f"{rate * 100:.0f}%"
    cards = [
        (
            "success-rate",
            "success rate",
            rate_text,
            f"{facts['succeeded']} of {facts['releases']} releases and restores",
        ),
        ("releases", "releases and restores", str(facts["releases"]), ""),
        (
            "mttr",
            "mean time to recover",
            _fmt_seconds(facts["mean_time_to_recover_s"]),
            f"{facts['recoveries']} recoveries",
        ),
        (
            "mean-release",
            "mean release time",
            _fmt_seconds(facts["mean_release_s"]),
            "successful ones",
        ),
        ("frozen", "refused while frozen", str(facts["frozen_refusals"]), ""),
    ]
    card_html = "".join(
        f'<div class="card {cls}"><span>{escape(label)}</span><b>{escape(value)}</b>'
        f"<small>{escape(note)}</small></div>"
        for cls, label, value, note in cards
    )
    rows = []
    for event in reversed(events):
        took = "" if event.duration_s is None else f"{event.duration_s:.1f}s"
        rows.append(
            f'<tr class="event kind-{escape(event.kind)}"><td>{escape(event.at)}</td>'
            f"<td>{escape(event.source)}</td>"
            f"<td>{escape(event.actor)}</td><td>{escape(event.what)}</td>"
            f'<td class="result-{escape(event.result)}">{escape(event.result)}</td>'
            f"<td>{escape(took)}</td></tr>"
        )
    return (
        f'<section class="stack" id="stack-{escape(name)}" data-stack="{escape(name)}">'
        f'<h2>Stack {escape(name)}</h2><div class="cards">{card_html}</div>'
        f"<h3>Release durations over time</h3>{chart(events)}"
        f'<h3>Timeline (newest first)</h3><table class="timeline"><thead><tr><th>when (UTC)</th>'
        f"<th>source</th><th>actor</th><th>what</th><th>result</th><th>took</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table></section>"
    )


def render(stacks: dict[str, list[Event]], generated: datetime) -> str:
    sections = "".join(stack_section(name, events) for name, events in stacks.items())
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta http-equiv="Content-Security-Policy" '
        "content=\"default-src 'none'; style-src 'unsafe-inline'\">"
        f"<title>Deploy dashboard</title><style>{CSS}</style></head><body>"
        "<h1>Deploy dashboard</h1>"
        f"<p>Generated {escape(generated.strftime('%Y-%m-%dT%H:%M:%SZ'))} by "
        f"<code>oncall.py dashboard</code> from pulumi stack history and each server's release "
        f"ledger and deploy metrics.</p>{sections}</body></html>"
    )


def as_json(stacks: dict[str, list[Event]]) -> dict[str, Any]:
    return {name: {"summary": summary(events)} for name, events in stacks.items()}
