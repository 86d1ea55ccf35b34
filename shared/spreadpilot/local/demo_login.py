"""Fixed console credentials for the local demo, so `make demo` can log in.

They are published in this file, so they protect nothing: `spreadpilot
security audit` fails any deployment that uses them.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from spreadpilot.platform.passwords import hash_secret
from spreadpilot.platform.settings import Settings

DEMO_USERNAME = "operator"
DEMO_PASSWORD = "demo-operator-pass"  # noqa: S105 - published on purpose (demo only)
DEMO_PIN = "482916"
DEMO_TOKEN_SECRET = "demo-token-secret-not-for-production-use-0123456"  # noqa: S105


def _default(field: str) -> str:
    value = Settings.model_fields[field].default
    assert isinstance(value, str)
    return value


def demo_secret_files() -> dict[str, Callable[[], str]]:
    """Secret name (the Settings defaults) -> how to make the value its file holds."""
    return {
        _default("admin_password_hash_secret"): lambda: hash_secret(DEMO_PASSWORD),
        _default("admin_pin_hash_secret"): lambda: hash_secret(DEMO_PIN),
        _default("admin_token_secret"): lambda: DEMO_TOKEN_SECRET,
    }


def install_demo_credentials(secrets_dir: Path) -> bool:
    """Write each demo secret file that is absent (mode 0600); True if any was written.

    Existing files are never overwritten: an operator's own values win.
    """
    secrets_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    wrote = False
    for name, make in demo_secret_files().items():
        path = secrets_dir / name
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            continue
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(make() + "\n")
        wrote = True
    return wrote
