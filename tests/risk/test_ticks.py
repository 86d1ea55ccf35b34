"""Every tick the agent's jobs can receive parses: Cloud Scheduler's body (the job
only, as terraform/modules/platform/scheduler.tf renders it) and the local
scheduler's (with its scheduled time), for every job whose consumer is the agent."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from spreadpilot.platform.schedules import jobs
from spreadpilot.services.emergency import CommandError, JobTick, parse_command

AGENT_JOBS = sorted(name for name, job in jobs().items() if job.consumer == "gateway-agent")


def test_the_agent_has_jobs() -> None:
    assert AGENT_JOBS == ["eod-check", "pre-open-check", "time-value-check"]


@pytest.mark.parametrize("name", AGENT_JOBS)
def test_cloud_scheduler_and_local_ticks_both_parse(name: str) -> None:
    cloud = parse_command(json.dumps({"job": name}).encode())
    local = parse_command(jobs()[name].payload(datetime(2026, 11, 24, 15, tzinfo=UTC)))

    assert isinstance(cloud, JobTick) and cloud.job == name and cloud.scheduled_time is None
    assert isinstance(local, JobTick) and local.job == name
    assert local.scheduled_time == datetime(2026, 11, 24, 15, tzinfo=UTC)


def test_a_tick_of_another_consumers_job_is_refused_naming_it() -> None:
    with pytest.raises(CommandError, match="health-ping"):
        parse_command(json.dumps({"job": "health-ping"}).encode())
