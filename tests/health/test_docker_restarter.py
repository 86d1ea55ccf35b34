"""The production restarter against a local Docker Engine API on a Unix socket (the
agent's container mounts the VM's /var/run/docker.sock): killing the hung gateway's
container is what makes its systemd unit start a fresh one."""

from __future__ import annotations

import asyncio
import socketserver
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import ClassVar

import pytest

from gateway.health import DockerRestarter, RestartFailed, restarter_from_settings
from spreadpilot.platform.settings import load_settings


class _Docker(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    containers: ClassVar[frozenset[str]] = frozenset({"ib-gateway-main"})
    requests: list[tuple[str, str]]


class _Handler(BaseHTTPRequestHandler):
    server: _Docker

    def do_POST(self) -> None:
        self.server.requests.append(("POST", self.path))
        name = self.path.removeprefix("/containers/").removesuffix("/kill")
        if name in self.server.containers and self.path.endswith("/kill"):
            self.send_response(204)
            self.end_headers()
            return
        body = b'{"message":"No such container: ' + name.encode() + b'"}'
        self.send_response(404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def address_string(self) -> str:  # a Unix socket has no client address
        return "docker.sock"

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture
def docker(tmp_path: Path) -> Iterator[_Docker]:
    server = _Docker(str(tmp_path / "docker.sock"), _Handler)
    server.requests = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_a_hung_gateway_s_container_is_killed_through_the_socket(docker: _Docker) -> None:
    restarter = DockerRestarter(Path(docker.server_address), "ib-gateway-{gateway_id}")  # type: ignore[arg-type]

    asyncio.run(restarter.restart("main"))

    assert docker.requests == [("POST", "/containers/ib-gateway-main/kill")]


def test_an_unknown_container_fails_naming_it(docker: _Docker) -> None:
    restarter = DockerRestarter(Path(docker.server_address), "ib-gateway-{gateway_id}")  # type: ignore[arg-type]

    with pytest.raises(RestartFailed, match="container ib-gateway-second not found"):
        asyncio.run(restarter.restart("second"))


def test_no_docker_socket_fails_naming_it(tmp_path: Path) -> None:
    restarter = DockerRestarter(tmp_path / "absent.sock", "ib-gateway-{gateway_id}")

    with pytest.raises(RestartFailed, match=r"absent\.sock"):
        asyncio.run(restarter.restart("main"))


def test_settings_choose_docker_by_default_and_a_command_on_request(tmp_path: Path) -> None:
    assert isinstance(restarter_from_settings(load_settings(data_dir=tmp_path)), DockerRestarter)
    command = restarter_from_settings(load_settings(data_dir=tmp_path, health_restarter="command"))
    assert type(command).__name__ == "CommandRestarter"
