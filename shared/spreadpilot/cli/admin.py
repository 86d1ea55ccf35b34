"""`spreadpilot admin`: the operator's console (status page + JSON API) on this machine.

Embedded mode only: it serves `create_app` on the embedded store with werkzeug's
threaded server (in gcp mode the console is the admin_api Cloud Function). With no
console secrets configured it installs the demo credentials (published in the code,
flagged by `spreadpilot security audit`) beside the store, so `make demo` followed by
`spreadpilot admin` shows the demo day behind a working login.
"""

from __future__ import annotations

import errno
import signal
import socket
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Annotated

import typer

from spreadpilot.cli.common import UsageError, err, friendly, out
from spreadpilot.platform.logs import configure_logging
from spreadpilot.platform.settings import Settings, load_settings, settings

#: Where `spreadpilot demo` (and so `make demo`) writes its day, relative to the cwd.
DEMO_DATA_DIR = Path(".spreadpilot/demo")
LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})
DEMO_NOTE = "demo credentials (published in the code): `spreadpilot security audit` flags them"


@dataclass(frozen=True)
class DemoUse:
    """Which demo credentials the console ends up using (each checked on its hash)."""

    password: bool
    pin: bool

    @property
    def any(self) -> bool:
        return self.password or self.pin


def _secret_names(s: Settings) -> tuple[str, ...]:
    return (s.admin_password_hash_secret, s.admin_pin_hash_secret, s.admin_token_secret)


def _missing_secrets(s: Settings) -> list[str]:
    from spreadpilot.adapters.embedded.env_secrets import EnvFileSecrets
    from spreadpilot.ports.secrets import MissingSecret

    secrets = EnvFileSecrets(s.secrets_dir)
    missing = []
    for name in _secret_names(s):
        try:
            secrets.get(name)
        except MissingSecret:
            missing.append(name)
    return missing


def resolve_settings(data_dir: Path | None) -> tuple[Settings, bool]:
    """The console's settings, and whether it fell back to the demo credentials.

    Data dir: --data-dir, else SPREADPILOT_DATA_DIR (or the config file), else the
    demo's folder. Secrets: as configured; with none of the three configured, the demo
    credentials in DATA_DIR/secrets (existing files there are kept).
    """
    base = settings()
    if base.mode != "embedded":
        raise UsageError(
            f"SPREADPILOT_MODE is {base.mode}: there the console is the admin_api Cloud "
            "Function; `spreadpilot admin` serves the embedded store only"
        )
    if data_dir is None:
        data_dir = base.data_dir if "data_dir" in base.model_fields_set else DEMO_DATA_DIR
    if not (data_dir / "store.db").is_file():
        raise UsageError(f"no store in {data_dir}: run `make demo` first (or give --data-dir DIR)")
    s = load_settings(data_dir=data_dir)
    missing = _missing_secrets(s)
    if not missing:
        return s, False
    if len(missing) < len(_secret_names(s)):
        where = f" in {s.secrets_dir}" if s.secrets_dir else ""
        raise UsageError(
            f"the console's secrets are only partly configured{where}: missing "
            f"{', '.join(missing)}; set them all (README: Operator console, set-up) "
            "or none for the demo credentials"
        )
    from spreadpilot.local.demo_login import install_demo_credentials

    secrets_dir = data_dir / "secrets"
    install_demo_credentials(secrets_dir)
    return load_settings(data_dir=data_dir, secrets_dir=secrets_dir), True


def demo_in_use(s: Settings) -> DemoUse:
    """Compare the configured secrets with the demo values (one scrypt each)."""
    from spreadpilot.adapters.embedded.env_secrets import EnvFileSecrets
    from spreadpilot.local.demo_login import DEMO_PASSWORD, DEMO_PIN
    from spreadpilot.platform.passwords import BadHash, verify_secret

    secrets = EnvFileSecrets(s.secrets_dir)

    def matches(plain: str, secret: str) -> bool:
        try:
            return verify_secret(plain, secrets.get(secret))
        except BadHash:
            return False

    return DemoUse(
        password=matches(DEMO_PASSWORD, s.admin_password_hash_secret),
        pin=matches(DEMO_PIN, s.admin_pin_hash_secret),
    )


def _listen(host: str, port: int) -> socket.socket:
    """The listening socket, bound here so a busy port is one clear error."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        return socket.create_server((host, port), family=family)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise UsageError(
                f"port {port} on {host} is in use: stop what uses it, or pick another "
                "with --port (0 = any free port)"
            ) from None
        raise UsageError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None


def _login_line(s: Settings, demo: DemoUse) -> str:
    """The username, and the demo password and PIN only where they are the ones in use."""
    from spreadpilot.local.demo_login import DEMO_PASSWORD, DEMO_PIN

    parts = [f"username {s.admin_username}"]
    parts.append(f"password {DEMO_PASSWORD}" if demo.password else "your configured password")
    parts.append(f"PIN {DEMO_PIN}" if demo.pin else "your configured PIN")
    return ", ".join(parts)


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _stop_on_sigterm() -> None:
    def stop(_signum: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)


@friendly
def admin(
    port: Annotated[int, typer.Option(help="TCP port (0: any free port, printed)")] = 8080,
    host: Annotated[
        str, typer.Option(help="address to listen on (127.0.0.1: this machine only)")
    ] = "127.0.0.1",
    data_dir: Annotated[
        Path | None,
        typer.Option(
            help="the embedded store's folder (default: SPREADPILOT_DATA_DIR if set, else "
            f"{DEMO_DATA_DIR}, where `make demo` writes)"
        ),
    ] = None,
) -> None:
    """Serve the operator's console (status page and /api/v1) on the embedded store
    until Ctrl-C; with no console secrets configured, log in with the demo credentials."""
    try:
        _serve(port, host, data_dir)
    except KeyboardInterrupt:  # before the server runs (it handles its own)
        err.print("console stopped", highlight=False)
        raise typer.Exit(130) from None


def _serve(port: int, host: str, data_dir: Path | None) -> None:
    from werkzeug.serving import make_server

    from spreadpilot.admin.app import create_app
    from spreadpilot.admin.registry import PREFIX
    from spreadpilot.platform.wiring import Container

    if not 0 <= port <= 65535:
        raise UsageError(f"--port must be 0-65535, got {port}")
    s, demo_fallback = resolve_settings(data_dir)
    sock = _listen(host, port)  # first: a busy port fails before any other work
    try:
        configure_logging("admin", s.log_level if s.log_level != "INFO" else "WARNING", "text")
        demo = demo_in_use(s)
        app = create_app(Container(s))
        server = make_server(host, port, app, threaded=True, fd=sock.fileno())
    finally:
        sock.close()  # the server holds its own duplicate of the descriptor
    base = f"http://{_url_host(host)}:{server.port}"
    lines = [
        f"SpreadPilot console on {base}/status",
        f"  store:   {s.data_dir / 'store.db'}",
        f"  API:     {base}{PREFIX}  (OpenAPI: {base}{PREFIX}/openapi.json)",
    ]
    if demo_fallback:
        lines.append(f"  secrets: {s.secrets_dir} (demo credentials)")
    lines.append(f"  login:   {_login_line(s, demo)}")
    if demo.any:
        lines.append(f"  note:    {DEMO_NOTE}")
        if host not in LOOPBACK:
            lines.append(f"  WARNING: listening on {host}: anyone who reaches it can log in")
    lines.append("Ctrl-C stops it.")
    for line in lines:
        out.print(line, highlight=False, markup=False, soft_wrap=True)
    _stop_on_sigterm()
    server.serve_forever()  # returns on Ctrl-C (and SIGTERM), the socket closed
    err.print("console stopped", highlight=False)
