"""Pytest fixtures for the fake Sheets server.

Use from a test module (pytest_plugins only works in the root conftest):

    from tests.fakes.sheets_fixtures import (  # noqa: F401 - pytest fixtures
        fake_sheets_fixture,
        fake_sheets_server_fixture,
    )

then take `fake_sheets` as a test argument. One server per session (stopping
a werkzeug server costs up to half a second); state is reset per test.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fakes.sheets_server import FakeSheetsServer


@pytest.fixture(scope="session", name="fake_sheets_server")
def fake_sheets_server_fixture() -> Iterator[FakeSheetsServer]:
    with FakeSheetsServer() as server:
        yield server


@pytest.fixture(name="fake_sheets")
def fake_sheets_fixture(fake_sheets_server: FakeSheetsServer) -> Iterator[FakeSheetsServer]:
    fake_sheets_server.reset()
    yield fake_sheets_server
    fake_sheets_server.reset()
