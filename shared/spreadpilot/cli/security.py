"""`spreadpilot security`: make the console's PIN and password hashes, and audit a
deployment against the security checklist (issue 8).

The hash commands print only the hash on stdout (prompts go to stderr), so
`$(spreadpilot security hash-pin)` or a pipe into `gcloud secrets versions add
NAME --data-file=-` takes exactly the value to store.
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from spreadpilot.cli.common import UsageError, boot, err, friendly, out

security_app = typer.Typer(
    help="Console security: PIN and password hashes, the security checklist.",
    no_args_is_help=True,
)
PASSWORD_MIN_LENGTH = 12
PASSWORD_MAX_LENGTH = 1024


@security_app.command("generate-pin")
@friendly
def generate_pin_command(
    length: Annotated[int, typer.Option("--length", min=6, max=32, help="digits")] = 6,
) -> None:
    """Print a random PIN that passes the PIN policy, and what to do with it."""
    from spreadpilot.domain.pin import generate_pin

    typer.echo(generate_pin(length))
    err.print(
        "next: store its hash with `spreadpilot security hash-pin` (type the PIN at the "
        "prompt), then set the hash as the secret admin-pin-hash; keep the PIN offline",
        highlight=False,
    )


@security_app.command("hash-pin")
@friendly
def hash_pin(
    pin: Annotated[
        str | None,
        typer.Argument(help="the PIN (omit it to be prompted: it stays out of shell history)"),
    ] = None,
) -> None:
    """Print the scrypt hash of a PIN, after checking it against the PIN policy."""
    from spreadpilot.domain.pin import WeakPin, check_pin_strength
    from spreadpilot.local.demo_login import DEMO_PIN
    from spreadpilot.platform.passwords import hash_secret

    if pin is None:
        pin = typer.prompt("PIN", hide_input=True, confirmation_prompt=True, err=True)
    assert pin is not None
    try:
        check_pin_strength(pin)
    except WeakPin as exc:
        raise UsageError(
            f"{exc}; pick another or run `spreadpilot security generate-pin`"
        ) from None
    if pin == DEMO_PIN:
        raise UsageError("that is the demo PIN, published in the code: pick another")
    typer.echo(hash_secret(pin))


@security_app.command("hash-password")
@friendly
def hash_password() -> None:
    """Prompt for the operator's console password (twice, hidden) and print its scrypt hash."""
    from spreadpilot.local.demo_login import DEMO_PASSWORD
    from spreadpilot.platform.passwords import hash_secret

    password: str = typer.prompt("Password", hide_input=True, confirmation_prompt=True, err=True)
    if len(password) < PASSWORD_MIN_LENGTH:
        raise UsageError(
            f"the password must have at least {PASSWORD_MIN_LENGTH} characters "
            f"(it has {len(password)})"
        )
    if len(password) > PASSWORD_MAX_LENGTH:
        raise UsageError(f"the password must have at most {PASSWORD_MAX_LENGTH} characters")
    if password == DEMO_PASSWORD:
        raise UsageError("that is the demo password, published in the code: pick another")
    typer.echo(hash_secret(password))


@security_app.command("audit")
@friendly
def audit() -> None:
    """Check this deployment (settings and secrets) against the security checklist;
    exit code 1 if any check fails."""
    from spreadpilot.services.security_audit import run_checklist

    c = boot()
    checks = run_checklist(c.settings, c.secrets)
    table = Table(title=f"Security audit ({c.settings.mode})")
    table.add_column("check")
    table.add_column("result")
    table.add_column("detail", overflow="fold")
    table.add_column("fix", overflow="fold")  # whole, to be copied
    for check in checks:
        result = "[green]PASS[/]" if check.ok else "[bold red]FAIL[/]"
        table.add_row(Text(check.name), result, Text(check.detail), Text(check.fix))
    out.print(table)
    failed = [check.name for check in checks if not check.ok]
    if failed:
        out.print(f"{len(failed)} of {len(checks)} checks failed: {', '.join(failed)}")
        raise typer.Exit(1)
    out.print(f"all {len(checks)} checks passed")
