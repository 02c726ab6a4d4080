"""Writes the config of the throwaway pull-request preview stack from the production stack file.

    python .github/scripts/preview_stack.py Pulumi.production.yaml Pulumi.pr-preview.yaml

A pull request's `pulumi preview` must not hold production's decryption rights, so it runs on
its own stack, in a file backend on the runner, with a passphrase made for that run. That stack
gets production's plain config (same server, paths, app, image and GitHub settings: the preview
shows what this program would declare for production) and none of production's encrypted
values, which it could not decrypt anyway. The destination file, made by `pulumi stack init`,
keeps its own keys (its `encryptionsalt`). Prints the keys of the dropped secrets, one per line,
as `pulumi config set --path` takes them, so the workflow can give each a throwaway value.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import yaml


def _is_secret(value: Any) -> bool:
    return isinstance(value, dict) and set(value) == {"secure"}


def _without_secrets(value: Any, path: str, dropped: list[str]) -> Any:
    if isinstance(value, dict):
        kept = {}
        for key, item in value.items():
            item_path = f"{path}.{key}"
            if _is_secret(item):
                dropped.append(item_path)
            else:
                kept[key] = _without_secrets(item, item_path, dropped)
        return kept
    if isinstance(value, list):
        return [
            _without_secrets(item, f"{path}[{index}]", dropped) for index, item in enumerate(value)
        ]
    return value


def preview_config(production: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """Production's `config:` without its secrets, and the keys of the secrets dropped."""
    dropped: list[str] = []
    config: dict[str, Any] = {}
    for key, value in (production.get("config") or {}).items():
        if _is_secret(value):
            dropped.append(key)
        else:
            config[key] = _without_secrets(value, key, dropped)
    return config, dropped


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    source, destination = Path(argv[0]), Path(argv[1])
    production = yaml.safe_load(source.read_text(encoding="utf-8")) or {}
    stack = (
        (yaml.safe_load(destination.read_text(encoding="utf-8")) or {})
        if destination.exists()
        else {}
    )
    stack["config"], dropped = preview_config(production)
    destination.write_text(yaml.safe_dump(stack, sort_keys=False), encoding="utf-8")
    print("\n".join(dropped))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
