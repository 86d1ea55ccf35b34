"""SecretManagerSecrets against a local Secret Manager over its REST transport.

The fake speaks the v1 REST API's access call (GET
/v1/projects/P/secrets/S/versions/latest:access) with Google's JSON error
bodies; the adapter under test is the real generated client in REST mode.
"""

from __future__ import annotations

import base64
import json
import logging
import time
from collections.abc import Iterator

import pytest
from google.auth.credentials import AnonymousCredentials
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from spreadpilot.adapters.gcp.secret_manager import SecretManagerSecrets, SecretsUnavailable
from spreadpilot.platform.logs import MASK, CloudJsonFormatter
from spreadpilot.platform.settings import load_settings
from spreadpilot.platform.wiring import Container
from spreadpilot.ports.secrets import MissingSecret

PROJECT = "sp-test"
PATH = "/v1/projects/sp-test/secrets/{}/versions/latest:access"


def ok(value: bytes, version: int = 1) -> Response:
    body = {
        "name": f"projects/{PROJECT}/secrets/x/versions/{version}",
        "payload": {"data": base64.b64encode(value).decode()},
    }
    return Response(json.dumps(body), 200, content_type="application/json")


def error(code: int, status: str, message: str) -> Response:
    body = {"error": {"code": code, "message": message, "status": status}}
    return Response(json.dumps(body), code, content_type="application/json")


@pytest.fixture
def server() -> Iterator[HTTPServer]:
    with HTTPServer() as srv:
        yield srv


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def adapter(
    server: HTTPServer, clock: Clock | None = None, timeout: float = 5.0
) -> SecretManagerSecrets:
    return SecretManagerSecrets(
        PROJECT,
        timeout=timeout,
        endpoint=server.url_for("").rstrip("/"),
        credentials=AnonymousCredentials(),
        monotonic=clock or time.monotonic,
    )


def test_reads_the_latest_version_and_masks_it_in_logs(server: HTTPServer) -> None:
    server.expect_request(
        PATH.format("sheets-service-account"), method="GET"
    ).respond_with_response(ok(b'{"type": "service_account", "private_key": "k3y-m4terial"}'))
    secrets = adapter(server)
    value = secrets.get("sheets-service-account")
    assert json.loads(value)["private_key"] == "k3y-m4terial"

    record = logging.makeLogRecord({"msg": "leaked %s", "args": (value,)})
    line = CloudJsonFormatter("t").format(record)
    assert "k3y-m4terial" not in line
    assert f"leaked {MASK}" in json.loads(line)["message"]


def test_a_value_is_cached_then_reread_so_a_rotation_arrives(server: HTTPServer) -> None:
    versions = iter([ok(b"first-value", 1), ok(b"second-value", 2)])
    server.expect_request(PATH.format("api-key")).respond_with_handler(lambda _r: next(versions))
    clock = Clock()
    secrets = adapter(server, clock)
    assert secrets.get("api-key") == "first-value"
    clock.now += 299
    assert secrets.get("api-key") == "first-value"
    assert len(server.log) == 1
    clock.now += 2
    assert secrets.get("api-key") == "second-value"
    assert len(server.log) == 2


def test_a_missing_secret_names_the_secret_and_the_fix(server: HTTPServer) -> None:
    server.expect_request(PATH.format("telegram-token")).respond_with_response(
        error(
            404,
            "NOT_FOUND",
            "Secret [projects/1/secrets/telegram-token] not found or has no versions.",
        )
    )
    with pytest.raises(MissingSecret) as caught:
        adapter(server).get("telegram-token")
    message = str(caught.value)
    assert "'telegram-token'" in message and PROJECT in message
    assert "gcloud secrets versions add telegram-token" in message


def test_a_secret_the_component_may_not_read_names_the_catalogue(server: HTTPServer) -> None:
    server.expect_request(PATH.format("sheets-service-account")).respond_with_response(
        error(403, "PERMISSION_DENIED", "Permission 'secretmanager.versions.access' denied")
    )
    with pytest.raises(MissingSecret, match=r"readers in shared/spreadpilot/platform/secrets.yaml"):
        adapter(server).get("sheets-service-account")


def test_unavailable_is_retried_within_the_deadline(server: HTTPServer) -> None:
    answers = iter([error(503, "UNAVAILABLE", "try again"), ok(b"after-a-retry")])
    server.expect_request(PATH.format("flaky")).respond_with_handler(lambda _r: next(answers))
    assert adapter(server).get("flaky") == "after-a-retry"
    assert len(server.log) == 2


def test_a_server_that_never_answers_fails_within_the_timeout(server: HTTPServer) -> None:
    def stall(_request: Request) -> Response:
        time.sleep(3)
        return ok(b"too-late")

    server.expect_request(PATH.format("slow")).respond_with_handler(stall)
    with pytest.raises(SecretsUnavailable, match=r"'slow'.*within 0.5 s"):
        adapter(server, timeout=0.5).get("slow")


def test_empty_and_binary_values_are_refused_with_the_fix(server: HTTPServer) -> None:
    server.expect_request(PATH.format("empty")).respond_with_response(ok(b""))
    server.expect_request(PATH.format("binary")).respond_with_response(ok(b"\xff\xfe\x00"))
    with pytest.raises(MissingSecret, match="'empty' is empty"):
        adapter(server).get("empty")
    with pytest.raises(MissingSecret, match="not UTF-8"):
        adapter(server).get("binary")


def test_a_malformed_name_never_reaches_the_server(server: HTTPServer) -> None:
    with pytest.raises(ValueError, match="not a secret id"):
        adapter(server).get("../other-project")
    assert server.log == []


def test_gcp_mode_wires_secret_manager_and_embedded_mode_env_files() -> None:
    gcp = Container(load_settings(mode="gcp", project_id="sp-prod", sheet_id="abc"))
    assert isinstance(gcp.secrets, SecretManagerSecrets) and gcp.secrets.project == "sp-prod"
    embedded = Container(load_settings(mode="embedded"))
    assert not isinstance(embedded.secrets, SecretManagerSecrets)
