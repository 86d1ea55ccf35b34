"""Test data for P&L: fills, marks and settlements written to a real store through
the same codec the agent uses, and a rollup over them."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from decimal import Decimal
from pathlib import Path
from typing import Any

from spreadpilot.adapters.embedded.sqlite_store import SqliteStore
from spreadpilot.domain.calendar import MarketCalendar, ny_datetime
from spreadpilot.domain.follower import Follower
from spreadpilot.domain.pnl import Instrument, Settlement, TradeKind, option, stock
from spreadpilot.platform import collections as C
from spreadpilot.platform.clock import SimClock
from spreadpilot.platform.settings import Settings, load_settings
from spreadpilot.services import pnl_records as R
from spreadpilot.services.followers import save_followers
from spreadpilot.services.pnl import PnlRollup

ACCOUNT = "U1000001"
FID = "alice"
FEE = Decimal("0.65")  # per contract per leg (domain.md section 6's example)


def follower(fid: str = FID, account: str = ACCOUNT, rate: str = "0.20", **kw: Any) -> Follower:
    return Follower(
        id=fid,
        name=kw.pop("name", "Alice Martin"),
        email=kw.pop("email", f"{fid}@example.com"),
        iban=kw.pop("iban", "DE89370400440532013000"),
        ib_account=account,
        gateway_id="gw-main",
        commission_rate=Decimal(rate),
        **kw,
    )


def at(day: date, hhmm: str) -> datetime:
    return ny_datetime(day, time.fromisoformat(hhmm))


def put(day: date, strike: str) -> Instrument:
    return option("QQQ", day, "P", strike)


def call(day: date, strike: str) -> Instrument:
    return option("QQQ", day, "C", strike)


QQQ = stock("QQQ")


@dataclass
class Book:
    """One account's raw P&L inputs, written as the agent writes them."""

    store: SqliteStore
    account: str = ACCOUNT
    fid: str = FID
    fills: dict[date, list[dict[str, Any]]] = field(default_factory=dict)
    _n: int = 0

    def fill(
        self,
        day: date,
        hhmm: str,
        ins: Instrument,
        qty: int,
        price: str,
        fee: Decimal | None = FEE,
        ref: str = "",
    ) -> None:
        """qty signed: bought > 0, sold < 0; the fee is per contract (or per fill for stock)."""
        self._n += 1
        commission = None if fee is None else fee * (abs(qty) if ins.is_option else 1)
        entry = R.fill_doc(
            exec_id=f"{self.account}.{day:%Y%m%d}.{self._n:04d}",
            at=at(day, hhmm),
            instrument=ins,
            side="BOT" if qty > 0 else "SLD",
            quantity=abs(qty),
            price=Decimal(price),
            commission=commission,
            order_ref=ref,
        )
        self.fills.setdefault(day, []).append(entry)
        self.store.set(
            C.FILLS,
            R.doc_id(self.account, day),
            R.fills_day_doc(self.account, self.fid, day, self.fills[day], at(day, "16:05")),
        )

    def spread(
        self, day: date, short: Instrument, long: Instrument, qty: int, credit: str, **kw: Any
    ) -> None:
        """A vertical opened for `credit` per share: short leg at credit + long price."""
        long_price = Decimal(kw.pop("long_price", "0.50"))
        self.fill(day, kw.pop("hhmm", "09:31"), short, -qty, f"{long_price + Decimal(credit)}")
        self.fill(day, "09:31", long, qty, f"{long_price}")

    def marks(
        self, day: date, qqq: str, prices: dict[Instrument, str] | None = None, over: bool = True
    ) -> None:
        positions = [R.position_doc(ins, 0, Decimal(p)) for ins, p in (prices or {}).items()]
        doc = R.marks_doc(
            self.account,
            self.fid,
            day,
            at(day, "16:01"),
            {"QQQ": Decimal(qqq)},
            positions,
            session_over=over,
        )
        self.store.set(C.MARKS, R.doc_id(self.account, day), doc)

    def settled(
        self, day: date, legs: list[tuple[Instrument, int, TradeKind]], observed: int
    ) -> None:
        settlements = [Settlement(ins, q, k, day, at(day, "16:00")) for ins, q, k in legs]
        doc = R.settlements_doc(
            self.account,
            self.fid,
            day,
            at(day, "16:00"),
            settlements,
            observed_share_change=observed,
            reconciled=True,
        )
        self.store.set(C.SETTLEMENTS, R.doc_id(self.account, day), doc)


def make_store(tmp: Path) -> SqliteStore:
    return SqliteStore(tmp / "store.sqlite3", durable=False)


def make_settings(tmp: Path, **kw: Any) -> Settings:
    return load_settings(data_dir=tmp, **kw)


def rollup(
    store: SqliteStore, tmp: Path, now: datetime, *followers: Follower, **kw: Any
) -> tuple[PnlRollup, SimClock]:
    save_followers(store, list(followers) or [follower()])
    clock = SimClock(now.astimezone(UTC))
    return PnlRollup(store, clock, MarketCalendar(), make_settings(tmp, **kw)), clock


def row(store: SqliteStore, day: date, fid: str = FID) -> dict[str, Any]:
    doc = store.get(C.PNL_DAILY, f"{fid}_{day.isoformat()}")
    assert doc is not None, f"no daily row for {fid} {day}"
    return doc


def monthly(store: SqliteStore, month: str, fid: str = FID) -> dict[str, Any]:
    doc = store.get(C.PNL_MONTHLY, f"{fid}_{month}")
    assert doc is not None, f"no monthly row for {fid} {month}"
    return doc


def cents(value: str) -> Decimal:
    return Decimal(value).quantize(Decimal("0.01"))
