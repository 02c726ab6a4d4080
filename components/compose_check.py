"""What blue-green and canary need of the compose file, checked by the program before anything
touches the server (`pulumi preview` already), each problem naming the line to change.

The two colours run as two compose projects from the same file, side by side, so the file must:

* publish the app on the port the scripts give each colour: `127.0.0.1:${MCP_HTTP_PORT}:<port>`
  (a fixed host port could not be bound twice);
* set no `container_name:` (two containers cannot have one name);
* give every named volume an explicit `name:` (or `external: true`): otherwise compose makes
  one volume per project, and the second colour starts on an empty one.

The server checks the last two again with its own compose (remote/lib/colours-compose.sh). This
is a line scan of the file as written (no YAML library, so a line number is exact); it knows the
block style the compose files here use, and says nothing about what it does not understand.
"""

from __future__ import annotations

import re
from pathlib import Path

PORT_VARIABLE = "MCP_HTTP_PORT"
_KEY = re.compile(r"^(?P<indent> *)(?P<key>[A-Za-z0-9_.-]+):(?P<rest>.*)$")


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def compose_problems(path: Path) -> list[str]:
    """One message per line to change ("<file>:<line>: ..."); [] when both colours can run."""
    lines = path.read_text().splitlines()
    name = path.name
    problems: list[str] = []
    top = ""  # the top-level key the line is under (services, volumes...)
    ports_indent: int | None = None  # inside a service's `ports:` list
    volume: tuple[int, str] | None = None  # (line number, name) of a top-level volume
    volume_named = False

    def close_volume() -> None:
        if volume is not None and not volume_named:
            number, vol = volume
            problems.append(
                f"{name}:{number}: named volume {vol!r} has no explicit `name:`: each colour "
                f"would get its own empty volume; add `name: <project>_{vol}` under it (the "
                "name recreate used, to keep its data) or use a ./ bind mount"
            )

    for number, raw in enumerate(lines, start=1):
        line = raw.split(" #", 1)[0].rstrip()
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        indent = _indent(line)
        if indent == 0:
            close_volume()
            volume, ports_indent = None, None
            match = _KEY.match(line)
            top = match["key"] if match else ""
            continue
        match = _KEY.match(line)
        if match and match["key"] == "container_name":
            problems.append(
                f"{name}:{number}: `{line.strip()}`: blue and green cannot both run with a fixed "
                "container name; remove this line (the scripts name the projects "
                "<project>-blue and -green)"
            )
        if top == "services":
            if (
                ports_indent is not None
                and indent <= ports_indent
                and not line.lstrip().startswith("-")
            ):
                ports_indent = None
            if match and match["key"] == "ports":
                ports_indent = indent
                continue
            if ports_indent is not None and line.lstrip().startswith("-"):
                entry = line.lstrip()[1:].strip().strip("\"'")
                if ":" in entry and PORT_VARIABLE not in entry:
                    problems.append(
                        f"{name}:{number}: `{line.strip()}` publishes a fixed host port, which "
                        "the second colour could not bind; write it as "
                        f'"127.0.0.1:${{{PORT_VARIABLE}:-8000}}:<container port>" (the scripts '
                        "set it to each colour's port)"
                    )
        elif top == "volumes":
            if indent == 2 and match:
                close_volume()
                volume, volume_named = (number, match["key"]), False
                rest = match["rest"].strip()
                if rest and rest not in ("{}", "null", "~"):
                    volume_named = "name:" in rest or "external:" in rest
            elif match and match["key"] in ("name", "external") and volume is not None:
                volume_named = True
    close_volume()
    return problems
