"""What every command shares: the consoles, the error boundary, the boot."""

from __future__ import annotations

import sys
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

import typer
from rich.console import Console

from spreadpilot.domain.errors import DomainValidationError
from spreadpilot.platform.logs import configure_logging
from spreadpilot.platform.settings import SettingsError, settings
from spreadpilot.platform.wiring import Container, container
from spreadpilot.services.billing import BillingError
from spreadpilot.services.pnl import FxError
from spreadpilot.services.statements import StatementMissing

# Wide enough for orderRefs when piped (CI logs, `| less`); a terminal sets its own.
out = Console(width=None if sys.stdout.isatty() else 120)
err = Console(stderr=True, width=None if sys.stderr.isatty() else 120)
F = TypeVar("F", bound=Callable[..., Any])


class UsageError(ValueError):
    """A command was asked for something it cannot do (e.g. a demo on a holiday)."""


def friendly(fn: F) -> F:
    """Turn configuration and validation errors into one clear message and exit code 2."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (
            SettingsError,
            DomainValidationError,
            FileNotFoundError,
            FileExistsError,
            UsageError,
            BillingError,
            FxError,
            StatementMissing,
        ) as exc:
            err.print(f"[bold red]error:[/] {exc}", markup=True, highlight=False)
            raise typer.Exit(2) from None

    return wrapper  # type: ignore[return-value]


def boot() -> Container:
    s = settings()
    configure_logging("cli", s.log_level if s.log_level != "INFO" else "WARNING", "text")
    return container()
