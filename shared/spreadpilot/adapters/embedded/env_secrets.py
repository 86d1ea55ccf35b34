"""Secrets for embedded runs: environment variables, then one file per secret."""

from __future__ import annotations

import os
from pathlib import Path

from spreadpilot.platform.logs import register_secret
from spreadpilot.ports.secrets import MissingSecret


def secret_env_name(name: str) -> str:
    return "SPREADPILOT_SECRET_" + name.upper().replace("-", "_").replace(".", "_")


class EnvFileSecrets:
    def __init__(self, directory: Path | None = None) -> None:
        self.directory = directory

    def get(self, name: str) -> str:
        env = secret_env_name(name)
        value = os.environ.get(env)
        if value is None and self.directory is not None:
            path = self.directory / name
            if path.is_file():
                value = path.read_text(encoding="utf-8").strip()
        if not value:
            where = f" or write it to {self.directory / name}" if self.directory else ""
            raise MissingSecret(f"secret '{name}' is not set: export {env}{where}")
        register_secret(value)
        return value
