"""The operator's console in a real browser: one demo day per test module, served by
`spreadpilot admin` in a subprocess (as an operator runs it), driven by Playwright
through the system's Chromium (`make system-deps` installs Debian's chromium)."""

from __future__ import annotations

import io
import logging
import os
import queue
import re
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, ViewportSize, sync_playwright
from rich.console import Console as RichConsole

from spreadpilot.adapters.embedded.sqlite_store import SqliteStore
from spreadpilot.domain.calendar import MarketCalendar, ny_date
from spreadpilot.local.demo_login import DEMO_PASSWORD, DEMO_USERNAME
from spreadpilot.platform.clock import SystemClock
from spreadpilot.platform.wiring import use_container

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
#: Required on the CI machines: without the background-networking flags Chromium's
#: own connections are refused and page loads stall.
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
NO_CHROMIUM = "no /usr/bin/chromium: run `make system-deps` (installs Debian's chromium)"
needs_chromium = pytest.mark.skipif(not CHROMIUM.exists(), reason=NO_CHROMIUM)
DESKTOP: ViewportSize = {"width": 1280, "height": 900}
PHONE: ViewportSize = {"width": 390, "height": 844}
START_TIMEOUT = 30.0
ADMIN = (sys.executable, "-m", "spreadpilot.cli.main", "admin")


@dataclass(frozen=True)
class Demo:
    data_dir: Path
    day: date
    report: str

    def store(self) -> SqliteStore:
        return SqliteStore(self.data_dir / "store.db")


@dataclass
class Console:
    """`spreadpilot admin` running in a subprocess, and what it printed."""

    process: subprocess.Popen[str]
    base: str  # http://127.0.0.1:PORT
    banner: list[str]
    stderr: list[str] = field(default_factory=list)

    @property
    def status_url(self) -> str:
        return f"{self.base}/status"


_NOISY = ("urllib3", "google", "grpc", "werkzeug", "asyncio", "httpx", "ib_async")


def _run_demo(data_dir: Path, day: date) -> str:
    """`make demo` in this process, its report captured; the process's logging and
    container are put back afterwards (the demo sends every line to its demo.log)."""
    from spreadpilot.local.demo import run_demo

    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    levels = {name: logging.getLogger(name).level for name in _NOISY}
    buffer = io.StringIO()
    try:
        # In a thread of its own: the demo runs asyncio loops (the gateway agent), which
        # cannot start in a thread where Playwright's sync API already runs one.
        with ThreadPoolExecutor(1) as pool:
            pool.submit(run_demo, RichConsole(file=buffer, width=160), data_dir, day).result()
    finally:
        use_container(None)  # the demo installed its own as the process's container
        root.handlers[:] = handlers
        root.setLevel(level)
        for name, value in levels.items():
            logging.getLogger(name).setLevel(value)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Demo:
    """One simulated trading day (as `make demo` makes it) in a fresh folder."""
    if not CHROMIUM.exists():  # the demo takes ~16 s: not for nothing
        pytest.skip(NO_CHROMIUM)
    day = MarketCalendar().next_trading_day(ny_date(SystemClock().now()))
    data_dir = tmp_path_factory.mktemp("browser") / "demo"
    return Demo(data_dir, day, _run_demo(data_dir, day))


def _clean_env() -> dict[str, str]:
    """This environment minus any SPREADPILOT_ setting (the console must find no
    secrets and install the demo credentials), unbuffered so the banner arrives."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPREADPILOT_")}
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _pump(stream: io.TextIOBase | None, into: queue.Queue[str | None]) -> None:
    assert stream is not None
    for line in stream:
        into.put(line.rstrip("\n"))
    into.put(None)


def _drain(from_: queue.Queue[str | None], timeout: float = 5.0) -> list[str]:
    """The lines a pump thread has read, up to the end of its stream (or the timeout)."""
    got: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            line = from_.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            break
        if line is None:
            break
        got.append(line)
    return got


def _wait_healthy(base: str, deadline: float) -> None:
    last = ""
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{base}/api/v1/health", timeout=2) as r:
                if r.status == 200:
                    return
        except (urllib.error.URLError, OSError) as exc:
            last = str(exc)
        time.sleep(0.1)
    raise AssertionError(f"{base}/api/v1/health never answered 200 ({last})")


@pytest.fixture(scope="module")
def console(demo: Demo) -> Iterator[Console]:
    """`spreadpilot admin --port 0 --data-dir <demo>`: started, healthy, then stopped."""
    process = subprocess.Popen(
        [*ADMIN, "--port", "0", "--data-dir", str(demo.data_dir)],
        cwd=REPO,
        env=_clean_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: queue.Queue[str | None] = queue.Queue()
    errors: queue.Queue[str | None] = queue.Queue()
    threading.Thread(target=_pump, args=(process.stdout, lines), daemon=True).start()
    threading.Thread(target=_pump, args=(process.stderr, errors), daemon=True).start()
    deadline = time.monotonic() + START_TIMEOUT
    banner: list[str] = []
    while not banner or not banner[-1].startswith("Ctrl-C"):
        try:
            line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
        except queue.Empty:
            line = None
        if line is None:
            process.kill()
            process.wait()
            raise AssertionError(
                f"`spreadpilot admin` did not start (exit {process.returncode}):\n"
                + "\n".join([*banner, *_drain(errors)])
            )
        banner.append(line)
    found = re.search(r"(http://[\w.:\[\]-]+)/status", banner[0])
    assert found, f"no address in the banner: {banner[0]!r}"
    running = Console(process, found.group(1), banner)
    try:
        _wait_healthy(running.base, deadline)
        yield running
    finally:
        process.terminate()  # SIGTERM: the console stops as on Ctrl-C
        try:
            code = process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            code = process.wait()
    running.stderr.extend(_drain(errors))
    assert code == 0, f"`spreadpilot admin` exited {code}:\n" + "\n".join(running.stderr)
    assert "Traceback" not in "\n".join(running.stderr), "\n".join(running.stderr)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """The system's Chromium, headless, through Playwright (a fresh profile per context)."""
    if not CHROMIUM.exists():
        pytest.skip(NO_CHROMIUM)
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    """A fresh browser profile (no cookies) at desktop size."""
    ctx = browser.new_context(viewport=DESKTOP)
    ctx.set_default_timeout(10_000)
    try:
        yield ctx
    finally:
        ctx.close()


def log_in(page: Page, console: Console) -> None:
    """Through the login form, as the operator would, with the demo credentials."""
    page.goto(console.status_url)
    page.locator("input#username").fill(DEMO_USERNAME)
    page.locator("input#password").fill(DEMO_PASSWORD)
    with page.expect_navigation():
        page.locator("button#login-submit").click()


@pytest.fixture
def operator_page(context: BrowserContext, console: Console) -> Page:
    """A page on the status page, logged in through the form."""
    page = context.new_page()
    log_in(page, console)
    return page
