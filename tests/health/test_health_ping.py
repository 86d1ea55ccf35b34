"""health_ping on an embedded platform (SQLite store, local bus, SimClock): the agent's
heartbeat age, missed scheduled jobs (a holiday's skipped runs are runs), store and
bus reachability, undelivered alerts; and the function through the Functions
Framework with a real CloudEvent."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, time, timedelta
from pathlib import Path
from typing import Any

import functions_framework
import pytest

from spreadpilot.domain.calendar import ny_datetime
from spreadpilot.platform import collections as C
from spreadpilot.platform.schedules import jobs
from spreadpilot.platform.settings import settings
from spreadpilot.platform.wiring import use_container
from spreadpilot.ports.bus import BusError
from spreadpilot.services.health import HealthPing, PingConfig
from spreadpilot.services.job_runs import record_job_run
from tests.health.conftest import alerts_of
from tests.health.test_health_http import BrokenBus
from tests.support.cloudevents import binary, pubsub_body
from tests.support.embedded import DAY, REPO, Platform, make_platform

THANKSGIVING = date(2026, 11, 26)  # NYSE closed; Cloud Scheduler fires all the same


@pytest.fixture
def p(tmp_path: Path) -> Platform:
    return make_platform(tmp_path, start=ny_datetime(DAY, time(9, 0)))


def ping(p: Platform, only: tuple[str, ...] | None = None) -> HealthPing:
    defs = jobs() if only is None else {name: jobs()[name] for name in only}
    return HealthPing(
        p.c.store,
        p.c.bus,
        p.clock,
        p.c.alerts,
        config=PingConfig(heartbeat_max_age=timedelta(seconds=120)),
        job_defs=defs,
    )


def beat(p: Platform) -> None:
    p.c.store.set(
        C.HEARTBEATS,
        "gateway-agent",
        {"component": "gateway-agent", "holder": "agent-1", "at": p.clock.now(), "gateways": {}},
    )


def types(p: Platform) -> list[str]:
    return [a["type"] for a in alerts_of(p.c.store)]


def test_heartbeat_age_raises_component_down_then_recovered_once(p: Platform) -> None:
    hp = ping(p, only=())
    beat(p)
    statuses = []
    for minutes in (1, 2, 3, 4, 5):  # the agent stops beating at 09:00
        p.clock.set(ny_datetime(DAY, time(9, minutes)))
        statuses.append(hp.run().report.checks["agent_heartbeat"]["status"])
    assert statuses == ["ok", "ok", "down", "down", "down"]  # 120 s is the limit
    assert types(p) == ["COMPONENT_DOWN"]
    (down,) = alerts_of(p.c.store)
    assert "no heartbeat for 180 s" in down["message"] and "agent-1" in down["message"]

    beat(p)  # the agent is back
    for minutes in (6, 7):
        p.clock.set(ny_datetime(DAY, time(9, minutes)))
        assert hp.run().report.checks["agent_heartbeat"]["status"] == "ok"
    assert types(p) == ["COMPONENT_DOWN", "COMPONENT_RECOVERED"]

    p.clock.set(ny_datetime(DAY, time(9, 12)))  # a second outage is a second page
    hp.run()
    assert types(p) == ["COMPONENT_DOWN", "COMPONENT_RECOVERED", "COMPONENT_DOWN"]
    stored = p.c.store.get(C.HEALTH, "gateway-agent")
    assert stored is not None and stored["status"] == "down"


def test_no_heartbeat_ever_is_shown_not_paged(p: Platform) -> None:
    result = ping(p, only=()).run()
    assert result.report.checks["agent_heartbeat"]["status"] == "degraded"
    assert "missing" in result.report.checks["agent_heartbeat"]["detail"]
    assert types(p) == []


def test_a_missed_scheduled_job_is_detected_once(p: Platform) -> None:
    hp = ping(p, only=("signal-poll",))
    p.clock.set(ny_datetime(DAY, time(9, 0)))
    first = hp.run()  # starts watching from here: nothing before is judged
    assert first.report.checks["jobs"]["missed"] == {}
    missed_at = ny_datetime(DAY, time(9, 33))
    job = jobs()["signal-poll"]
    for moment in job.fire_times(ny_datetime(DAY, time(9, 0)), ny_datetime(DAY, time(10, 0))):
        if moment > p.clock.now():
            p.clock.set(moment)
        if moment != missed_at:
            record_job_run(p.c.store, "signal-poll", p.clock.now(), "WAITING")
    p.clock.set(ny_datetime(DAY, time(10, 0)))
    result = hp.run()
    assert result.report.checks["jobs"]["missed"] == {"signal-poll": [missed_at.isoformat()]}
    assert result.report.status == "degraded"
    (alert,) = alerts_of(p.c.store, "JOB_MISSED")
    assert "signal-poll" in alert["message"] and "2026-11-24 14:33 UTC" in alert["message"]
    p.clock.set(ny_datetime(DAY, time(10, 1)))
    again = hp.run()  # the same miss is not reported twice
    assert again.report.checks["jobs"]["missed"] == {}
    assert len(alerts_of(p.c.store, "JOB_MISSED")) == 1


def test_fire_times_before_the_first_check_are_never_judged(p: Platform) -> None:
    # A fresh deployment at 09:30: the 09:27-09:29 polls ran before anything watched
    # (or before the system existed); only what is due from the first check counts.
    hp = ping(p, only=("signal-poll",))
    p.clock.set(ny_datetime(DAY, time(9, 30)))
    hp.run()
    job = jobs()["signal-poll"]
    for moment in job.fire_times(p.clock.now(), ny_datetime(DAY, time(9, 41))):
        p.clock.set(max(moment, p.clock.now()))
        record_job_run(p.c.store, "signal-poll", p.clock.now(), "WAITING")
    p.clock.set(ny_datetime(DAY, time(9, 45)))

    result = hp.run()

    assert result.report.checks["jobs"]["missed"] == {}
    assert alerts_of(p.c.store, "JOB_MISSED") == []


def test_a_holiday_whose_runs_are_skipped_is_not_reported(tmp_path: Path) -> None:
    p = make_platform(tmp_path, start=ny_datetime(THANKSGIVING, time(9, 0)))
    hp = ping(p, only=("signal-poll",))
    hp.run()
    job = jobs()["signal-poll"]
    fired = job.fire_times(p.clock.now(), ny_datetime(THANKSGIVING, time(10, 0)))
    assert len(fired) == 14  # 09:27-09:40: the scheduler fires on a holiday too
    for moment in fired:
        if moment > p.clock.now():
            p.clock.set(moment)
        p.c.signal_poller().run()  # the real poller: "not an NYSE trading day"
    runs = [r.data for r in p.c.store.query(C.JOB_RUNS) if r.data["job"] == "signal-poll"]
    assert len(runs) == 14 and {r["status"] for r in runs} == {"SKIPPED"}
    p.clock.set(ny_datetime(THANKSGIVING, time(10, 0)))
    result = hp.run()
    assert result.report.checks["jobs"]["missed"] == {}
    assert alerts_of(p.c.store, "JOB_MISSED") == []


def test_jobs_whose_consumer_does_not_record_runs_are_not_watched(p: Platform) -> None:
    hp = ping(p)  # every job of jobs.yaml
    hp.run()
    p.clock.set(ny_datetime(DAY, time(17, 0)))  # pre-open, time value, eod, rollups all due
    result = hp.run()
    watched = result.report.checks["jobs"]["watched"]
    assert set(watched) == {j.name for j in jobs().values() if j.records_runs}
    assert "signal-poll" in watched
    assert "daily-pnl-rollup" in watched
    assert "backup" not in watched  # its consumer (the Firestore export) records no runs
    missed = result.report.checks["jobs"]["missed"]
    assert set(missed) <= set(watched)  # nothing recorded the watched ones here


def test_failed_alert_deliveries_are_reported(p: Platform) -> None:
    store = p.c.store
    store.set(C.ALERT_DELIVERIES, "a1-telegram", {"status": "FAILED", "channel": "telegram"})
    store.set(C.ALERT_DELIVERIES, "a1-email", {"status": "SENT", "channel": "email"})
    store.set(C.ALERT_DELIVERIES, "a2-telegram", {"status": "PENDING", "channel": "telegram"})
    hp = ping(p, only=())
    result = hp.run()
    check = result.report.checks["alert_deliveries"]
    assert check == {"status": "down", "failed": 1, "ids": ["a1-telegram"]}
    assert result.report.status == "down"
    (alert,) = alerts_of(store, "COMPONENT_DOWN")
    assert "1 alert deliveries failed" in alert["message"] and alert["severity"] == "CRITICAL"
    store.set(C.ALERT_DELIVERIES, "a3-email", {"status": "FAILED", "channel": "email"})
    p.clock.advance(timedelta(minutes=1))
    assert hp.run().report.checks["alert_deliveries"]["failed"] == 2
    assert len(alerts_of(store, "COMPONENT_DOWN")) == 1  # one a day: cannot feed itself
    recorded = store.get(C.HEALTH, "health-ping")
    assert recorded is not None and recorded["status"] == "down"


def test_an_unreachable_bus_turns_health_red(p: Platform) -> None:
    hp = ping(p, only=())
    hp.bus = BrokenBus(p.c.bus)  # type: ignore[assignment]
    result = hp.run()
    assert result.report.checks["bus"]["status"] == "down"
    assert result.report.status == "down"
    hp.bus = p.c.bus
    assert hp.run().report.checks["bus"]["status"] == "ok"


def test_bus_probe_of_the_local_bus(p: Platform) -> None:
    p.c.bus.probe()  # type: ignore[attr-defined]
    broken = BrokenBus(p.c.bus)
    with pytest.raises(BusError):
        broken.probe()


@pytest.fixture
def platform_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Platform]:
    monkeypatch.setenv("SPREADPILOT_DATA_DIR", str(tmp_path))
    settings.cache_clear()
    p = make_platform(tmp_path, start=ny_datetime(DAY, time(10, 0)))
    use_container(p.c)
    yield p
    use_container(None)
    settings.cache_clear()


def test_the_function_runs_one_check_per_tick(platform_env: Platform) -> None:
    p = platform_env
    beat(p)
    app = functions_framework.create_app(
        target="health_ping",
        source=str(REPO / "functions" / "health_ping" / "main.py"),
        signature_type="cloudevent",
    )
    body: dict[str, Any] = pubsub_body(
        {"job": "health-ping"}, publish_time=p.clock.now().astimezone(UTC)
    )
    response = app.test_client().post("/", **binary(body, topic="health-ticks"))
    assert response.status_code == 200
    recorded = p.c.store.get(C.HEALTH, "health-ping")
    assert recorded is not None and recorded["status"] == "ok"
    assert set(recorded["checks"]) == {
        "store",
        "bus",
        "agent_heartbeat",
        "jobs",
        "alert_deliveries",
    }
    runs = [r.data for r in p.c.store.query(C.JOB_RUNS) if r.data["job"] == "health-ping"]
    assert [r["status"] for r in runs] == ["OK"]
