"""`spreadpilot ibsim`: run the local IB Gateway standalone (registered by the main CLI)."""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer

from ibsim.scenario import Scenario, ScenarioError, build_gateway, make_clock
from spreadpilot.domain.calendar import NEW_YORK

__all__ = ["build_gateway", "ibsim"]

DEFAULT_ACCOUNTS = "DU000001"


def _start(text: str) -> datetime:
    """'2026-11-24T09:25' (New York) -> an aware datetime; an explicit offset is kept."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise typer.BadParameter(
            f"{text!r} is not a New York date and time; write e.g. 2026-11-24T09:25",
            param_hint="--start",
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=NEW_YORK)


def ibsim(
    port: Annotated[
        int, typer.Option(help="TCP port on 127.0.0.1 (IB Gateway paper: 4002).")
    ] = 4002,
    scenario: Annotated[
        Path | None,
        typer.Option(help="YAML/JSON scenario: clock, accounts, market, fills, pacing, faults."),
    ] = None,
    accounts: Annotated[
        str,
        typer.Option(
            help="Comma-separated account ids; several = one advisor-style login "
            "(every order must name its account). Overrides the scenario's when given."
        ),
    ] = DEFAULT_ACCOUNTS,
    start: Annotated[
        str | None,
        typer.Option(
            help="New York date and time the clock starts at, e.g. 2026-11-24T09:25 "
            "(default: the scenario's, else now)."
        ),
    ] = None,
    speed: Annotated[
        float,
        typer.Option(help="Clock speed: 1 = real time, 60 = one simulated minute per second."),
    ] = 1.0,
    no_pacing: Annotated[
        bool,
        typer.Option(
            "--no-pacing", help="Turn off IB's 50 messages/s limit (capacity benchmarks)."
        ),
    ] = False,
    log_level: Annotated[
        str, typer.Option(help="DEBUG logs every message in and out (logger ibsim.wire).")
    ] = "INFO",
) -> None:
    """Run a local IB Gateway (TWS API, server version 176) until interrupted.

    Unmodified ib_async connects to 127.0.0.1:PORT and trades QQQ options and
    combos against a seeded price model.

    Time: the clock runs from --start (New York time, e.g. 2026-11-24T09:25)
    at --speed times real time; without --start it is the real time now. A
    scenario file's `clock: {start: ..., speed: ...}` sets the same; the
    options win when given.

    Accounts: --accounts DU000001,DU000002 lists the managed accounts; with
    several the gateway is advisor style (every order must name its account).
    A scenario file's `accounts: [...]` sets the same.

    Scenario files also script the market (spot, volatility, waypoints), fill
    behaviour (price improvement, partial fills, rejections), pacing and
    faults (lose_connectivity / restore / restore_data_lost / restart at a
    New York time). See ibsim/scenario.py for the format.
    """
    logging.basicConfig(
        level=log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        loaded = Scenario.load(scenario) if scenario is not None else Scenario()
    except (ScenarioError, FileNotFoundError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    updates: dict[str, object] = {}
    if scenario is None or accounts != DEFAULT_ACCOUNTS:
        updates["accounts"] = [a for a in accounts.split(",") if a.strip()]
    clock_updates: dict[str, object] = {}
    if start is not None:
        clock_updates["start"] = _start(start)
    if scenario is None or speed != 1.0:
        clock_updates["speed"] = speed
    if clock_updates:
        updates["clock"] = {**loaded.clock.model_dump(), **clock_updates}
    if no_pacing:
        updates["pacing"] = {**loaded.pacing.model_dump(), "enabled": False}
    if updates:
        try:
            loaded = Scenario.parse({**loaded.model_dump(), **updates}, source="options")
        except ScenarioError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from None
    if loaded.clock.speed == "sim":
        typer.echo(
            'error: clock.speed "sim" needs the embedded platform to advance the clock; '
            "use a number (1 = real time) with `spreadpilot ibsim`",
            err=True,
        )
        raise typer.Exit(2)
    clock = make_clock(loaded)
    gateway = build_gateway(loaded, clock, port=port)
    typer.echo(
        f"ibsim: 127.0.0.1:{port} accounts {','.join(loaded.accounts)} "
        f"clock {clock.now().astimezone(NEW_YORK):%Y-%m-%d %H:%M:%S} New York "
        f"x{loaded.clock.speed} pacing "
        f"{f'{loaded.pacing.max_per_second}/s' if loaded.pacing.enabled else 'off'}",
        err=True,
    )
    try:
        asyncio.run(gateway.serve_forever())
    except KeyboardInterrupt:
        typer.echo("ibsim: stopped", err=True)
