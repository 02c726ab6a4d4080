"""Reads a remote script's result strictly: its last stdout line, one JSON object of strings."""

from __future__ import annotations

import json

import pulumi

SHOWN_CHARS = 200


class ResultError(pulumi.RunError):
    """A step's result line is missing or malformed: the step failed, whatever its exit code."""


def parse_result(step: str, stdout: str, keys: tuple[str, ...]) -> dict[str, str]:
    """`keys` of the JSON object on the last line of `stdout`; raises ResultError naming the
    step, what it printed and what was expected, never guessing a value."""
    expected = f"expected its last stdout line to be one JSON object with {', '.join(keys)}"
    lines = (stdout or "").splitlines()
    last = lines[-1] if lines else ""
    shown = repr(last[:SHOWN_CHARS] + ("..." if len(last) > SHOWN_CHARS else ""))
    if not last.strip():
        raise ResultError(f"{step}: the script printed no result line ({expected})")
    try:
        parsed = json.loads(last)
    except ValueError:
        raise ResultError(f"{step}: the result line {shown} is not JSON ({expected})") from None
    if not isinstance(parsed, dict):
        raise ResultError(f"{step}: the result line {shown} is not a JSON object ({expected})")
    missing = [key for key in keys if key not in parsed]
    if missing:
        raise ResultError(
            f"{step}: the result line {shown} lacks {', '.join(missing)} ({expected})"
        )
    not_text = [key for key in keys if not isinstance(parsed[key], str)]
    if not_text:
        raise ResultError(
            f"{step}: in the result line {shown}, {', '.join(not_text)} must be strings"
        )
    return {key: parsed[key] for key in keys}
