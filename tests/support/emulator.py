"""What the Cloud SDK's local emulators (Firestore, Pub/Sub) have in common for tests.

`LocalEmulator` runs one emulator process (and its children, in their own
process group) on a free local port: start with retries when the port is
taken between probe and bind, wait until it answers, keep its log for error
messages, stop the whole group. A subclass says only what differs: its name,
its command line, its readiness probe, its environment variable (and, where
the emulator has one, how to reset it).

Only a missing tool (gcloud, java) makes an emulator "unavailable" (tests
skip, saying which); any other failure to start is an error carrying the
emulator's log tail.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import ClassVar, Self


class EmulatorUnavailable(Exception):
    """The emulator cannot exist on this machine (no gcloud/emulator, or no java)."""


class EmulatorError(RuntimeError):
    """The emulator is installed but did not start or answer."""


def sdk_path(relative: Path) -> Path | None:
    """The file `relative` inside the Cloud SDK of the gcloud on PATH, if it is there."""
    gcloud = shutil.which("gcloud")
    if gcloud is None:
        return None
    path = Path(os.path.realpath(gcloud)).parent.parent / relative
    return path if path.is_file() else None


def missing_tool_reason(name: str, component: str, jre: str = "a JRE") -> str | None:
    """Why the `name` emulator (SDK `component`) cannot run here, or None when it can."""
    if shutil.which("gcloud") is None:
        return (
            f"{name} emulator unavailable: gcloud (Google Cloud CLI with the "
            f"{component} component) is not on PATH"
        )
    if shutil.which("java") is None:
        return f"{name} emulator unavailable: java is not on PATH (the emulator needs {jre})"
    return None


def free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.contextmanager
def environment_variable(name: str, value: str) -> Iterator[None]:
    """Set os.environ[name] = value inside the block, then restore what was there."""
    previous = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = previous


class LocalEmulator:
    """One emulator process (and its children) on a free local port."""

    NAME: ClassVar[str]  #: for messages, e.g. "Firestore"
    ENV_VAR: ClassVar[str]  #: the variable client libraries read, e.g. FIRESTORE_EMULATOR_HOST
    LOG_PREFIX: ClassVar[str]  #: the temp log file's name prefix

    def __init__(self, *, bind: str = "127.0.0.1", startup_timeout: float = 60.0) -> None:
        self.bind = bind
        self.startup_timeout = startup_timeout
        self.port = 0
        self.started_in: float | None = None  #: seconds from launch to first answer
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_path: Path | None = None

    # -- what a subclass defines -------------------------------------------------

    def command(self) -> list[str]:
        """The command line that starts the emulator on self.bind:self.port."""
        raise NotImplementedError

    def _answers(self) -> bool:
        """Whether the emulator answers yet (default: HTTP 200 on /)."""
        try:
            with urllib.request.urlopen(f"http://{self.host}/", timeout=1.0) as response:
                return bool(response.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    # -- shared process management ----------------------------------------------

    @property
    def host(self) -> str:
        """host:port, the value for ENV_VAR."""
        if not self.port:
            raise EmulatorError("emulator not started")
        return f"{self.bind}:{self.port}"

    def env(self) -> dict[str, str]:
        return {self.ENV_VAR: self.host}

    def start(self) -> Self:
        if self._proc is not None:
            return self
        last: EmulatorError | None = None
        for _ in range(3):  # a free port can be taken between probe and bind
            try:
                self._start_once()
                return self
            except EmulatorError as exc:
                last = exc
                if "already in use" not in str(exc).lower():
                    raise
        assert last is not None
        raise last

    def _start_once(self) -> None:
        self.port = free_port(self.bind)
        command = self.command()
        fd, log_name = tempfile.mkstemp(prefix=self.LOG_PREFIX, suffix=".log")
        self._log_path = Path(log_name)
        began = time.monotonic()
        with os.fdopen(fd, "wb") as log_file:
            self._proc = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # own process group: stop() ends the whole tree
            )
        atexit.register(self.stop)
        deadline = began + self.startup_timeout
        while True:
            code = self._proc.poll()
            if code is not None:
                tail = self.log_tail()
                self._forget()
                raise EmulatorError(
                    f"{self.NAME} emulator exited with code {code} before answering on "
                    f"{self.bind}:{self.port}\ncommand: {' '.join(command)}\nlog tail:\n{tail}"
                )
            if self._answers():
                self.started_in = time.monotonic() - began
                return
            if time.monotonic() > deadline:
                tail = self.log_tail()
                self.stop()
                raise EmulatorError(
                    f"{self.NAME} emulator did not answer on {self.bind}:{self.port} within "
                    f"{self.startup_timeout:.0f} s\ncommand: {' '.join(command)}\n"
                    f"log tail:\n{tail}"
                )
            time.sleep(0.05)

    def log_tail(self, lines: int = 40) -> str:
        if self._log_path is None or not self._log_path.exists():
            return "(no log)"
        text = self._log_path.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:]) or "(empty log)"

    def stop(self) -> None:
        """Terminate the emulator's whole process group; SIGKILL if it lingers."""
        proc = self._proc
        if proc is None:
            return
        for sig, grace in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, sig)
            try:
                proc.wait(timeout=grace)
                break
            except subprocess.TimeoutExpired:
                continue
        # Children may outlive the launcher (under the gcloud fallback the JVM is a
        # grandchild): make sure the group is gone.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        self._forget()

    def _forget(self) -> None:
        atexit.unregister(self.stop)
        self._proc = None
        if self._log_path is not None:
            with contextlib.suppress(OSError):
                self._log_path.unlink()
            self._log_path = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
