"""The gateway agent: order messages in, IB orders on the simulator, reports out."""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from gateway.agent import (
    GATEWAYS_ENV,
    SUBSCRIPTION,
    GatewayConfig,
    GatewayConfigError,
    gateways_from_env,
    parse_gateways,
)
from spreadpilot.cli.main import app
from spreadpilot.platform.settings import settings
from spreadpilot.platform.wiring import use_container
from tests.agent.conftest import MakeAgent
from tests.agent.recovery_support import ORDERS, events, publish
from tests.execution.conftest import WIDE_QUOTES, MakeRig, Rig


def nothing_left(rig: Rig) -> bool:
    """No order message comes back, even after every nack backoff has passed."""
    rig.clock.set(rig.clock.now() + timedelta(minutes=15))
    return rig.bus.pull(SUBSCRIPTION, max_messages=10) == []


# --- execution -------------------------------------------------------------------------


def test_intents_are_executed_on_the_simulator_and_reported(
    make_rig: MakeRig, make_agent: MakeAgent, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="spreadpilot")
    rig = make_rig()
    agent = make_agent(rig)
    alice, bob = rig.intent("alice"), rig.intent("bob", quantity=1)
    publish(rig, alice)
    publish(rig, bob)

    assert rig.run(agent.drain) == 2

    reports = rig.reports()
    for intent in (alice, bob):
        assert events(reports, intent.order_ref) == ["CLAIMED", "PLACED", "FILLED"]
        (order,) = rig.orders(intent.order_ref)
        assert order.status == "Filled"
    filled = {r["order_ref"]: r["filled"] for r in reports if r["event"] == "FILLED"}
    assert filled == {alice.order_ref: 2, bob.order_ref: 1}
    assert nothing_left(rig)  # both messages acked
    # the log lines the log-based metrics count (terraform/modules/platform/monitoring.tf)
    ops = [(getattr(r, "operation", None), getattr(r, "order_ref", None)) for r in caplog.records]
    for intent in (alice, bob):
        assert ("order_placed", intent.order_ref) in ops
        assert ("order_filled", intent.order_ref) in ops


def test_a_redelivered_message_makes_one_ib_order(make_rig: MakeRig, make_agent: MakeAgent) -> None:
    rig = make_rig()
    agent = make_agent(rig)
    intent = rig.intent()
    publish(rig, intent, times=3)

    assert rig.run(agent.drain) == 3
    publish(rig, intent)  # and once more after it was done
    assert rig.run(agent.drain) == 1

    assert len(rig.orders(intent.order_ref)) == 1
    assert len(rig.orders()) == 1
    assert events(rig.reports(), intent.order_ref) == ["CLAIMED", "PLACED", "FILLED"]
    assert nothing_left(rig)


def test_a_ladder_longer_than_the_ack_deadline_keeps_its_message_leased(
    make_rig: MakeRig, make_agent: MakeAgent, caplog: pytest.LogCaptureFixture
) -> None:
    # mid 0.60, natural 0.54: six 15 s steps, 90 s of ladder against a 60 s ack deadline
    rig = make_rig(market={"option_spread_tiers": WIDE_QUOTES})
    agent = make_agent(rig, settings={"ladder_start": "mid", "ladder_step_seconds": 15})
    assert agent.ack_deadline_seconds == 60
    intent = rig.intent()
    publish(rig, intent)
    started = rig.clock.now()

    async def one_batch() -> int:
        await agent.connect_all()
        try:
            return await agent.run_once()
        finally:
            await agent.close()

    with caplog.at_level(logging.WARNING):
        assert rig.run(one_batch) == 1

    assert rig.clock.now() - started > timedelta(seconds=agent.ack_deadline_seconds)
    assert events(rig.reports(), intent.order_ref)[-1] == "FILLED"
    assert not [r for r in caplog.records if "ignored" in r.getMessage()]  # the ack landed
    assert rig.bus.pull(SUBSCRIPTION, max_messages=10) == []  # not redelivered meanwhile
    assert nothing_left(rig)
    assert len(rig.orders(intent.order_ref)) == 1


def test_a_malformed_message_is_acked_with_an_alert_and_nothing_sent(
    make_rig: MakeRig, make_agent: MakeAgent
) -> None:
    rig = make_rig()
    agent = make_agent(rig)
    rig.bus.publish(ORDERS, b"not json at all")
    broken = rig.intent().model_dump(mode="json")
    broken.pop("spread")
    rig.bus.publish(ORDERS, json.dumps(broken).encode())

    assert rig.run(agent.drain) == 2

    assert rig.orders() == []
    assert rig.reports() == []
    alerts = rig.alerts()
    assert [a["type"] for a in alerts] == ["MESSAGE_DEAD_LETTERED"] * 2
    assert all("Nothing was sent to IB" in a["message"] for a in alerts)
    assert nothing_left(rig)


def test_an_intent_for_an_unconfigured_gateway_waits_with_an_alert(
    make_rig: MakeRig, make_agent: MakeAgent
) -> None:
    rig = make_rig()
    agent = make_agent(rig)
    intent = rig.intent(gateway_id="gw-elsewhere")
    publish(rig, intent)

    assert rig.run(agent.drain) == 1

    assert rig.orders() == []
    assert [a["type"] for a in rig.alerts()] == ["GATEWAY_UNREACHABLE"]
    assert not nothing_left(rig)  # nacked: it comes back


def test_run_executes_heartbeats_and_stops(
    make_rig: MakeRig, make_agent: MakeAgent, caplog: pytest.LogCaptureFixture
) -> None:
    rig = make_rig()
    agent = make_agent(rig)
    intent = rig.intent()
    publish(rig, intent)
    start = rig.clock.now()

    async def go() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(agent.run(stop))
        for _ in range(400):
            await asyncio.sleep(0.05)
            done = any(o.status == "Filled" for o in rig.orders(intent.order_ref))
            if done and rig.clock.now() - start > timedelta(seconds=35):
                break
        stop.set()
        await asyncio.wait_for(task, 30)

    with caplog.at_level(logging.INFO, logger="spreadpilot.agent"):
        rig.run(go)

    (order,) = rig.orders(intent.order_ref)
    assert order.status == "Filled"
    assert events(rig.reports(), intent.order_ref) == ["CLAIMED", "PLACED", "FILLED"]
    beats = [r for r in caplog.records if getattr(r, "operation", None) == "heartbeat"]
    assert len(beats) >= 3  # at the start, every 15 s of clock time, at the end
    assert any(getattr(r, "gateways", {}).get("gw-1") == "connected" for r in beats)
    connections = [r for r in caplog.records if getattr(r, "operation", None) == "connection"]
    assert any(getattr(r, "state", "") == "connected" for r in connections)
    assert not agent.connected()  # disconnected on stop


def test_an_unreachable_gateway_backs_off_and_alerts(
    make_rig: MakeRig, make_agent: MakeAgent
) -> None:
    rig = make_rig()
    agent = make_agent(rig, reconnect_initial_seconds=2.0)
    (conn,) = agent.connections.values()
    conn.broker = agent._ib_broker("gw-1", GatewayConfig("127.0.0.1", 1, 9))

    async def go() -> tuple[bool, bool]:
        first = await agent._ensure(conn, respect_backoff=True)
        again = await agent._ensure(conn, respect_backoff=True)  # within the backoff
        return first, again

    assert rig.run(go) == (False, False)
    assert conn.failures == 1 and conn.state == "backoff"
    assert conn.next_attempt == rig.clock.now() + timedelta(seconds=2)
    assert [a["type"] for a in rig.alerts()] == ["GATEWAY_UNREACHABLE"]


# --- configuration ---------------------------------------------------------------------


def test_gateways_parse_from_json() -> None:
    gws = parse_gateways(
        '{"gw-main": {"host": "127.0.0.1", "port": 4002, "client_id": 7,'
        ' "accounts": ["U1000001", "U1000002"]}}'
    )
    assert gws == {"gw-main": GatewayConfig("127.0.0.1", 4002, 7, ("U1000001", "U1000002"))}


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("{", "not valid JSON"),
        ("[]", "non-empty JSON object"),
        ('{"gw-a": {"host": "h", "port": "x", "client_id": 1}}', "['gw-a'].port"),
        ('{"gw-a": {"host": "", "port": 1, "client_id": 1}}', "['gw-a'].host"),
        ('{"gw-a": {"host": "h", "port": 1, "client_id": -1}}', "['gw-a'].client_id"),
        ('{"gw-a": {"host": "h", "port": 1, "client_id": 1, "accounts": "U1"}}', ".accounts"),
        ('{"gw-a": {"host": "h", "port": 1, "client_id": 1, "acounts": []}}', "acounts"),
        (
            '{"a": {"host": "h", "port": 1, "client_id": 1},'
            ' "b": {"host": "h", "port": 1, "client_id": 1}}',
            "['b'].client_id",
        ),
    ],
)
def test_gateway_errors_name_the_gateway_and_field(value: str, message: str) -> None:
    with pytest.raises(GatewayConfigError, match=GATEWAYS_ENV) as info:
        parse_gateways(value)
    assert message in str(info.value)


def test_missing_gateways_setting_is_a_clear_error() -> None:
    with pytest.raises(GatewayConfigError, match=f"{GATEWAYS_ENV} is not set"):
        gateways_from_env({})


def test_cli_agent_without_gateways_exits_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SPREADPILOT_DATA_DIR", str(tmp_path))
    monkeypatch.delenv(GATEWAYS_ENV, raising=False)
    settings.cache_clear()
    use_container(None)
    try:
        result = CliRunner().invoke(app, ["agent", "--once"])
        bad = CliRunner().invoke(app, ["agent", "--once"], env={GATEWAYS_ENV: '{"g": 1}'})
    finally:
        settings.cache_clear()
        use_container(None)
    assert result.exit_code == 2, result.output
    assert f"{GATEWAYS_ENV} is not set" in result.output
    assert bad.exit_code == 2 and "['g']" in bad.output
    assert "Traceback" not in result.output + bad.output
