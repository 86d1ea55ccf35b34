"""An embedded platform in a temp folder: settings, simulated clock, sample data."""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from datetime import date, datetime, time
from pathlib import Path
from typing import Any

import yaml

from spreadpilot.domain.calendar import ny_datetime
from spreadpilot.domain.sheet import SHEET_HEADER
from spreadpilot.platform.clock import SimClock
from spreadpilot.platform.settings import Settings, load_settings
from spreadpilot.platform.wiring import Container
from spreadpilot.services.followers import parse_followers, save_followers

REPO = Path(__file__).resolve().parents[2]
SAMPLE_FOLLOWERS = REPO / "shared/spreadpilot/local/sample/followers.yaml"
HEADER = list(SHEET_HEADER)
#: A Tuesday, NYSE open; Thursday 26 is Thanksgiving, Friday 27 closes early.
DAY = date(2026, 11, 24)
ACTIVE = ("alice", "bruno", "dario")  # carla is disabled, elena suspended


def bull_put_row(day: date = DAY, qty: str = "2", low: str = "486", high: str = "488") -> list[str]:
    return [f"{day:%d/%m/%Y}", "QQQ", "Long", qty, low, high, "-", "-"]


@dataclass
class Platform:
    settings: Settings
    clock: SimClock
    c: Container

    def write_sheet(self, *rows: list[str]) -> None:
        with self.settings.sheet_csv_path.open("w", newline="", encoding="utf-8") as fh:
            csv.writer(fh).writerows([HEADER, *rows])

    def at(self, hhmm: str, day: date = DAY) -> None:
        self.clock.set(ny_datetime(day, time.fromisoformat(hhmm)))

    def drain(self, subscription: str) -> list[dict[str, Any]]:
        """Pull and ack everything on a subscription; the payloads as JSON."""
        out: list[dict[str, Any]] = []
        while batch := self.c.bus.pull(subscription, max_messages=100, timeout=1):
            self.c.bus.ack(subscription, [m.ack_id for m in batch])
            out.extend(json.loads(m.data) for m in batch)
        return out


def make_platform(tmp_path: Path, start: datetime | None = None, **overrides: Any) -> Platform:
    settings = load_settings(
        mode="embedded", data_dir=tmp_path, signal_read_interval_seconds=15, **overrides
    )
    clock = SimClock(start or ny_datetime(DAY, time(9, 27)))
    c = Container(settings, clock=clock)
    followers = parse_followers(yaml.safe_load(SAMPLE_FOLLOWERS.read_text())["followers"])
    save_followers(c.store, followers)
    return Platform(settings, clock, c)
