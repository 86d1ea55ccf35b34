"""The admin console on an embedded platform: app, logged-in client, demo credentials."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from spreadpilot.admin.app import create_app
from spreadpilot.admin.registry import PIN_HEADER
from spreadpilot.local.demo_login import (
    DEMO_PASSWORD,
    DEMO_PIN,
    DEMO_USERNAME,
    install_demo_credentials,
)
from spreadpilot.platform.wiring import Container
from tests.support.embedded import Platform, make_platform

API = "/api/v1"
WRONG_PIN = "917364"  # strong, and not the demo PIN


@dataclass
class Console:
    platform: Platform
    app: Flask
    client: FlaskClient
    token: str = ""

    @property
    def c(self) -> Container:
        return self.platform.c

    def login(self, password: str = DEMO_PASSWORD, username: str = DEMO_USERNAME) -> TestResponse:
        r = self.client.post(f"{API}/auth/login", json={"username": username, "password": password})
        if r.status_code == 200:
            self.token = r.json["token"]  # type: ignore[index]
        return r

    def at(self, hhmm: str) -> None:
        """Move the platform's clock, then log in again (tokens live 15 minutes)."""
        self.platform.at(hhmm)
        assert self.login().status_code == 200

    def headers(self, pin: str | None = None, **extra: str) -> dict[str, str]:
        h = {"Authorization": f"Bearer {self.token}", **extra}
        if pin is not None:
            h[PIN_HEADER] = pin
        return h

    def get(self, path: str, **kw: Any) -> TestResponse:
        return self.client.get(API + path, headers=self.headers(), **kw)

    def call(
        self, method: str, path: str, json: Any = None, pin: str | None = None, **kw: Any
    ) -> TestResponse:
        return self.client.open(
            API + path, method=method, json=json, headers=self.headers(pin), **kw
        )


def secrets_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "secrets"
    install_demo_credentials(folder)
    return folder


def make_console(
    tmp_path: Path, platform: Platform | None = None, *, login: bool = True, **overrides: Any
) -> Console:
    """A console on `platform` (default: a fresh embedded one with the sample followers)."""
    if platform is None:
        platform = make_platform(tmp_path, secrets_dir=secrets_dir(tmp_path), **overrides)
    app = create_app(platform.c)
    app.testing = True
    console = Console(platform, app, app.test_client())
    if login:
        assert console.login().status_code == 200
    return console


__all__ = ["API", "DEMO_PIN", "WRONG_PIN", "Console", "make_console", "secrets_dir"]
