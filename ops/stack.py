"""One stack as the on-call engineer sees it: its Pulumi stack (Automation API), its server
reached with the pinned host key and deploy key, and the app settings the scripts run with."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from components.server_access import (
    ServerAccess,
    ServerAccessError,
    config_source,
    from_stack_config,
)
from components.settings import AppSettings, ConfigError, load_app_settings, load_server_settings

PROJECT_DIR = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class OnCallStack:
    name: str
    stack: Any  # pulumi.automation.Stack
    config: dict[str, Any]  # `{"mcp:server": {"value": ..., "secret": ...}, ...}`
    server: ServerAccess
    app: AppSettings
    backup_dir: str

    def outputs(self) -> dict[str, Any]:
        return {key: value.value for key, value in self.stack.outputs().items()}


def stack_config(stack: Any) -> dict[str, Any]:
    """The stack's config, secrets decrypted, as `from_stack_config` takes it."""
    return {k: {"value": v.value, "secret": v.secret} for k, v in stack.get_all_config().items()}


def open_stack(name: str) -> OnCallStack:
    """Selects stack `name` of this project and validates what reaching its server needs."""
    from pulumi import automation as auto

    stack = auto.select_stack(stack_name=name, work_dir=str(PROJECT_DIR))
    config = stack_config(stack)
    server = from_stack_config(config)
    try:
        app = load_app_settings(config_source(config))
        paths = load_server_settings(config_source(config))[1]
    except ConfigError as error:
        raise ServerAccessError(f"the stack's config is not valid: {error}") from error
    return OnCallStack(
        name=name, stack=stack, config=config, server=server, app=app, backup_dir=paths.backup_dir
    )
