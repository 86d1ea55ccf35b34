"""QQQ and its daily option chain, with IB's conIds, contract details and qualify rules.

Why: ib_async's `qualifyContracts` is the only way the client learns leg
conIds, so `resolve` mirrors what IB's reqContractDetails answers: one row per
matching contract and exchange (a blank exchange lists every exchange, so an
under-specified option is ambiguous), nothing for an unknown contract.

conId scheme (int32, stable across runs, never the stock's 320227571):
    1_000_000_000 + days_since_2020_01_01 * 100_000 + strike_in_half_dollars * 2 + (1 if call)
so any option conId decodes back to (expiry, strike, right) without a table.
"""

from __future__ import annotations

import copy
import re
from datetime import date, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING

from ib_async import Contract, ContractDetails, TagValue

from ibsim.market import Right, normalize_right
from spreadpilot.domain.calendar import NEW_YORK

if TYPE_CHECKING:
    from ibsim.market import MarketModel
    from spreadpilot.domain.calendar import MarketCalendar, Session

SYMBOL = "QQQ"
STOCK_CON_ID = 320227571
LONG_NAME = "INVESCO QQQ TRUST SERIES 1"
TIME_ZONE = "US/Eastern"
OPTION_BASE = 1_000_000_000
EPOCH = date(2020, 1, 1)
MAX_DAYS = (2**31 - 1 - OPTION_BASE) // 100_000  # keeps option conIds in int32

STOCK_EXCHANGES = (
    "SMART,AMEX,NYSE,CBOE,PHLX,ISE,CHX,ARCA,ISLAND,DRCTEDGE,BEX,BATS,EDGEA,BYX,IEX,"
    "EDGX,FOXRIVER,PEARL,NYSENAT,LTSE,MEMX,IBEOS,OVERNIGHT,TPLUS0,PSX"
)
OPTION_EXCHANGES = (
    "SMART,AMEX,CBOE,PHLX,PSE,ISE,BOX,BATS,NASDAQOM,CBOE2,NASDAQBX,MIAX,GEMINI,EDGX,"
    "MERCURY,PEARL,EMERALD,MEMX,IBUSOPT,SAPPHIRE"
)
OPTION_ORDER_TYPES = (
    "ACTIVETIM,AD,ADJUST,ALERT,ALLOC,AVGCOST,BASKET,BENCHPX,COND,CONDORDER,DAY,DEACT,"
    "DEACTDIS,DEACTEOD,GAT,GTC,GTD,GTT,HID,ICE,IOC,LIT,LMT,MIT,MKT,MTL,NGCOMB,NONALGO,"
    "OCA,OPENCLOSE,PEGMIDVOL,PEGMKTVOL,PEGPRMVOL,PEGSRFVOL,POSTONLY,PRICECHK,REL,"
    "RELPCTOFS,RELSTK,SCALE,SCALERST,SIZECHK,SMARTSTG,SNAPMID,SNAPMKT,SNAPREL,STP,"
    "STPLMT,TRAIL,TRAILLIT,TRAILLMT,TRAILMIT,VOLAT,WHATIF"
)
STOCK_ORDER_TYPES = (
    "ACTIVETIM,AD,ADJUST,ALERT,ALGO,ALLOC,AON,AVGCOST,BASKET,BENCHPX,CASHQTY,COND,"
    "CONDORDER,DARKONLY,DARKPOLL,DAY,DEACT,DEACTDIS,DEACTEOD,DIS,DUR,GAT,GTC,GTD,GTT,"
    "HID,IBKRATS,ICE,IMB,IOC,LIT,LMT,LOC,MIDPX,MIT,MKT,MOC,MTL,NGCOMB,NODARK,NONALGO,"
    "OCA,OPG,OPGREROUT,PEGBENCH,PEGMID,POSTATS,POSTONLY,PREOPGRTH,PRICECHK,REL,"
    "REL2MID,RELPCTOFS,RPI,RTH,SCALE,SCALEODD,SCALERST,SIZECHK,SNAPMID,SNAPMKT,SNAPREL,"
    "STP,STPLMT,SWEEP,TRAIL,TRAILLIT,TRAILLMT,TRAILMIT,WHATIF"
)
STOCK_RULE = "26"
OPTION_RULE = "32"
_OCC = re.compile(r"^([A-Z]{1,6})\s*(\d{6})([CP])(\d{8})$")


def occ_symbol(expiry: date, strike: Decimal, right: str) -> str:
    """IB's localSymbol for an option: the OCC symbol, root padded to six characters."""
    return f"{SYMBOL:<6}{expiry:%y%m%d}{normalize_right(right)}{int(strike * 1000):08d}"


def _strike(value: float | Decimal | str) -> Decimal:
    """A strike as a plain Decimal: 600.0 -> Decimal('600'), 600.5 -> Decimal('600.5')."""
    d = Decimal(str(value))
    return d.quantize(Decimal(1)) if d == d.to_integral_value() else d.normalize()


class Instruments:
    """The QQQ stock and its options: conIds, contracts, details, qualify, chain.

    Listed: an expiry on every trading day; strikes every `strike_step` dollars,
    `strike_range` either side of that day's open (from the market model).
    Contract details' hours are given for the week from the market's day.
    """

    stock_con_id = STOCK_CON_ID

    def __init__(
        self,
        calendar: MarketCalendar,
        market: MarketModel,
        *,
        strike_range: int = 50,
        strike_step: int = 1,
        listed_expiries: int = 1,
    ) -> None:
        self.calendar = calendar
        self.market = market
        self.strike_range = strike_range
        self.strike_step = strike_step
        self.listed_expiries = listed_expiries
        self._sessions: dict[date, Session | None] = {}
        self._strikes: dict[date, frozenset[Decimal]] = {}  # listed strikes per expiry

    # -- calendar

    def session(self, day: date) -> Session | None:
        if day not in self._sessions:
            try:
                self._sessions[day] = self.calendar.session(day)
            except Exception:  # outside the calendar's range
                self._sessions[day] = None
        return self._sessions[day]

    def is_expiry(self, day: date) -> bool:
        """Every NYSE trading day has a QQQ expiry (0DTE)."""
        return self.session(day) is not None

    # -- contracts

    def stock(self) -> Contract:
        return Contract(
            secType="STK",
            conId=STOCK_CON_ID,
            symbol=SYMBOL,
            exchange="SMART",
            primaryExchange="NASDAQ",
            currency="USD",
            localSymbol=SYMBOL,
            tradingClass="NMS",
        )

    @staticmethod
    def option_con_id(expiry: date, strike: Decimal, right: str) -> int:
        days = (expiry - EPOCH).days
        halves = Decimal(strike) * 2
        if not 0 <= days <= MAX_DAYS:
            raise ValueError(f"expiry {expiry} outside the conId range")
        if halves != halves.to_integral_value() or not 0 < halves < 50_000:
            raise ValueError(f"strike {strike} not on a half dollar below 25000")
        call = 1 if normalize_right(right) == "C" else 0
        return OPTION_BASE + days * 100_000 + int(halves) * 2 + call

    def option(self, expiry: date, strike: Decimal, right: str) -> Contract:
        """The option contract (listed or not), as IB qualifies it on SMART."""
        r = normalize_right(right)
        k = _strike(strike)
        return Contract(
            secType="OPT",
            conId=self.option_con_id(expiry, k, r),
            symbol=SYMBOL,
            lastTradeDateOrContractMonth=f"{expiry:%Y%m%d}",
            strike=float(k),
            right=r,
            multiplier="100",
            exchange="SMART",
            currency="USD",
            localSymbol=occ_symbol(expiry, k, r),
            tradingClass=SYMBOL,
        )

    def option_spec(self, con_id: int) -> tuple[date, Decimal, Right] | None:
        """(expiry, strike, right) of a listed option conId, else None."""
        if not OPTION_BASE <= con_id < 2**31:
            return None
        days, rest = divmod(con_id - OPTION_BASE, 100_000)
        expiry = EPOCH + timedelta(days=days)
        strike = _strike(Decimal(rest // 2) / 2)
        right: Right = "C" if rest % 2 else "P"
        if strike not in self._strike_set(expiry):
            return None
        return expiry, strike, right

    def by_con_id(self, con_id: int) -> Contract | None:
        if con_id == STOCK_CON_ID:
            return self.stock()
        spec = self.option_spec(con_id)
        return self.option(*spec) if spec else None

    # -- chain

    def strikes(self, expiry: date) -> list[Decimal]:
        """Listed strikes of an expiry: every step around that day's open; [] if none."""
        return sorted(self._strike_set(expiry))

    def _strike_set(self, expiry: date) -> frozenset[Decimal]:
        found = self._strikes.get(expiry)
        if found is None:
            found = frozenset()
            if self.is_expiry(expiry):
                center = int(self.market.open_price_on(expiry).to_integral_value())
                step = self.strike_step
                low = max(step, center - self.strike_range)
                found = frozenset(
                    Decimal(k) for k in range(low, center + self.strike_range + 1, step)
                )
            self._strikes[expiry] = found
        return found

    def expirations(self, day: date) -> list[date]:
        """Expiries listed on `day`: that day's (0DTE) and the next `listed_expiries - 1`."""
        if not self.is_expiry(day):
            return []
        found: list[date] = []
        candidate = day
        while len(found) < self.listed_expiries and candidate - day < timedelta(days=60):
            if self.is_expiry(candidate):
                found.append(candidate)
            candidate += timedelta(days=1)
        return found

    def chain(self, day: date) -> tuple[list[date], list[Decimal]]:
        """(expirations, strikes) listed on a trading day; ([], []) on other days."""
        expirations = self.expirations(day)
        strikes = sorted({k for e in expirations for k in self.strikes(e)})
        return expirations, strikes

    # -- details

    def _hours(self, start: date, days: int, extended: bool) -> str:
        """IB's 'YYYYMMDD:HHMM-YYYYMMDD:HHMM;...'; extended = the stock's 04:00-20:00."""
        parts = []
        for offset in range(days):
            day = start + timedelta(days=offset)
            session = self.session(day)
            if session is None:
                parts.append(f"{day:%Y%m%d}:CLOSED")
                continue
            begin = session.open.astimezone(NEW_YORK)
            end = session.close.astimezone(NEW_YORK)
            if extended:  # pre-market from 04:00, after-hours until 4 h after the close
                begin = begin.replace(hour=4, minute=0)
                end = end + timedelta(hours=4)
            parts.append(f"{day:%Y%m%d}:{begin:%H%M}-{day:%Y%m%d}:{end:%H%M}")
        return ";".join(parts)

    def details(self, contract: Contract, exchange: str = "SMART") -> ContractDetails:
        """ContractDetails as IB fills them for QQQ and its options."""
        c = copy.copy(contract)
        c.exchange = exchange
        ref = self.market.day
        if c.secType == "STK":
            exchanges = STOCK_EXCHANGES.split(",")
            return ContractDetails(
                contract=c,
                marketName="NMS",
                minTick=0.01,
                orderTypes=STOCK_ORDER_TYPES,
                validExchanges=STOCK_EXCHANGES,
                priceMagnifier=1,
                underConId=0,
                longName=LONG_NAME,
                industry="",
                category="",
                subcategory="",
                timeZoneId=TIME_ZONE,
                tradingHours=self._hours(ref, 7, extended=True),
                liquidHours=self._hours(ref, 7, extended=False),
                aggGroup=1,
                secIdList=[TagValue("ISIN", "US46090E1038")],
                marketRuleIds=",".join([STOCK_RULE] * len(exchanges)),
                stockType="ETF",
                minSize=1.0,
                sizeIncrement=1.0,
                suggestedSizeIncrement=100.0,
            )
        expiry = _parse_day(c.lastTradeDateOrContractMonth)
        assert expiry is not None
        session = self.session(expiry)
        close = session.close.astimezone(NEW_YORK).strftime("%H:%M:%S") if session else "16:00:00"
        start = min(ref, expiry)
        span = max(1, min(7, (expiry - start).days + 1))
        exchanges = OPTION_EXCHANGES.split(",")
        return ContractDetails(
            contract=c,
            marketName=SYMBOL,
            minTick=0.01,
            orderTypes=OPTION_ORDER_TYPES,
            validExchanges=OPTION_EXCHANGES,
            priceMagnifier=1,
            underConId=STOCK_CON_ID,
            longName=LONG_NAME,
            contractMonth=f"{expiry:%Y%m}",
            timeZoneId=TIME_ZONE,
            tradingHours=self._hours(start, span, extended=False),
            liquidHours=self._hours(start, span, extended=False),
            aggGroup=2,
            underSymbol=SYMBOL,
            underSecType="STK",
            marketRuleIds=",".join([OPTION_RULE] * len(exchanges)),
            realExpirationDate=f"{expiry:%Y%m%d}",
            lastTradeTime=close,
            minSize=1.0,
            sizeIncrement=1.0,
            suggestedSizeIncrement=1.0,
        )

    # -- qualify

    def resolve(self, contract: Contract) -> list[ContractDetails]:
        """What IB's reqContractDetails returns for this (partial) contract; [] = unknown."""
        exchange = (contract.exchange or "").upper()
        if contract.conId:
            found = self.by_con_id(contract.conId)
            if found is None:
                return []
            if contract.secType and contract.secType.upper() != found.secType:
                return []
            return self._rows([found], exchange or "SMART")
        symbol = (contract.symbol or "").upper()
        local = re.sub(r"\s+", "", contract.localSymbol or "").upper()
        sec_type = (contract.secType or "").upper()
        if symbol and symbol != SYMBOL:
            return []
        if (contract.currency or "USD").upper() != "USD":
            return []
        if not symbol and not local:
            return []
        found_contracts: list[Contract] = []
        option_fields = bool(
            contract.lastTradeDateOrContractMonth or contract.strike or contract.right
        ) or bool(_OCC.match(local))
        if sec_type in ("", "STK") and not (sec_type == "" and option_fields):
            stock = self.stock()
            if (
                local in ("", SYMBOL)
                and (contract.primaryExchange or "").upper() in ("", "NASDAQ", "ISLAND")
                and contract.tradingClass in ("", "NMS", SYMBOL)
            ):
                found_contracts.append(stock)
        if sec_type == "OPT" or (sec_type == "" and option_fields):
            found_contracts += self._options(contract, local)
        return self._rows(found_contracts, exchange)

    def _rows(self, contracts: list[Contract], exchange: str) -> list[ContractDetails]:
        rows: list[ContractDetails] = []
        for c in contracts:
            valid = (STOCK_EXCHANGES if c.secType == "STK" else OPTION_EXCHANGES).split(",")
            if exchange:
                if exchange in valid:
                    rows.append(self.details(c, exchange))
            else:
                rows.extend(self.details(c, e) for e in valid)
        return rows

    def _options(self, query: Contract, local: str) -> list[Contract]:
        expiry_text = query.lastTradeDateOrContractMonth or ""
        strike = _strike(query.strike) if query.strike else None
        try:
            right: Right | None = normalize_right(query.right) if query.right else None
        except ValueError:
            return []
        occ = _OCC.match(local) if local else None
        if local and occ is None:
            return []
        if occ is not None:
            if occ.group(1) != SYMBOL:
                return []
            occ_expiry = _parse_day("20" + occ.group(2))
            occ_strike = _strike(Decimal(occ.group(4)) / 1000)
            occ_right = normalize_right(occ.group(3))
            if occ_expiry is None:
                return []
            if expiry_text and expiry_text not in (f"{occ_expiry:%Y%m%d}", f"{occ_expiry:%Y%m}"):
                return []
            if (strike is not None and strike != occ_strike) or right not in (None, occ_right):
                return []
            expiry_text, strike, right = f"{occ_expiry:%Y%m%d}", occ_strike, occ_right
        if query.multiplier not in ("", "100"):
            return []
        if query.tradingClass not in ("", SYMBOL):
            return []
        expiries = self._expiries(expiry_text)
        rights: list[Right] = [right] if right else ["C", "P"]
        found: list[Contract] = []
        for expiry in expiries:
            listed = self.strikes(expiry)
            strikes = [k for k in listed if k == strike] if strike is not None else listed
            for k in strikes:
                found.extend(self.option(expiry, k, r) for r in rights)
        return found

    def _expiries(self, text: str) -> list[date]:
        if not text:
            return self.expirations(self.market.day)
        if len(text) == 8:
            day = _parse_day(text)
            if day is None or day < self.market.day:  # IB never qualifies expired options
                return []
            return [day] if self.is_expiry(day) else []
        if len(text) == 6 and text.isdigit():
            year, month = int(text[:4]), int(text[4:])
            if not 1 <= month <= 12:
                return []
            first = date(year, month, 1)
            days = [first + timedelta(days=i) for i in range(31)]
            return [
                d for d in days if d.month == month and d >= self.market.day and self.is_expiry(d)
            ]
        return []


def _parse_day(text: str) -> date | None:
    try:
        return date(int(text[:4]), int(text[4:6]), int(text[6:8])) if len(text) == 8 else None
    except ValueError:
        return None
