"""The scheduled jobs of scheduler/jobs.yaml, and their fire times on any clock.

The YAML is the one definition: Terraform generates the Cloud Scheduler jobs
from it and the local scheduler fires the same crons on a simulated clock.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from zoneinfo import ZoneInfo

import yaml
from croniter import croniter
from pydantic import BaseModel, ConfigDict, Field, field_validator

JOBS_FILE_ENV = "SPREADPILOT_JOBS_FILE"


class Job(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    description: str
    schedules: tuple[str, ...] = Field(min_length=1)
    time_zone: str
    topic: str
    consumer: str
    #: the consumer exists and records each run in job_runs (health_ping checks it)
    records_runs: bool = False

    @field_validator("schedules")
    @classmethod
    def _crons(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for cron in value:
            if not croniter.is_valid(cron) or len(cron.split()) != 5:
                raise ValueError(f"{cron!r} is not a 5-field cron expression")
        return value

    @field_validator("time_zone")
    @classmethod
    def _tz(cls, value: str) -> str:
        ZoneInfo(value)  # raises for an unknown zone
        return value

    def payload(self, scheduled: datetime) -> bytes:
        return json.dumps({"job": self.name, "scheduled_time": scheduled.isoformat()}).encode()

    def fire_times(self, start: datetime, end: datetime) -> list[datetime]:
        """Fire times in [start, end), as aware UTC datetimes, DST-correct, in order."""
        return sorted(set(self._fire_times(start, end)))

    def _fire_times(self, start: datetime, end: datetime) -> Iterator[datetime]:
        tz = ZoneInfo(self.time_zone)
        for cron in self.schedules:
            it = croniter(cron, start.astimezone(tz) - _EPSILON)
            while True:
                moment: datetime = it.get_next(datetime)
                if moment >= end:
                    break
                if moment >= start:
                    yield moment.astimezone(UTC)


_EPSILON = timedelta(microseconds=1)


def default_jobs_file() -> Path:
    env = os.environ.get(JOBS_FILE_ENV)
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[3] / "scheduler" / "jobs.yaml"


def load_jobs(path: Path | None = None) -> dict[str, Job]:
    path = path or default_jobs_file()
    if not path.is_file():
        raise FileNotFoundError(
            f"jobs file {path} not found; set {JOBS_FILE_ENV} to scheduler/jobs.yaml"
        )
    raw = yaml.safe_load(path.read_text())
    return {name: Job(name=name, **spec) for name, spec in raw["jobs"].items()}


@cache
def jobs() -> dict[str, Job]:
    return load_jobs()


def timeline(
    start: datetime, end: datetime, only: set[str] | None = None
) -> list[tuple[datetime, Job]]:
    """Every job firing in [start, end), in time order (ties by job name)."""
    fired = [
        (t, job)
        for job in jobs().values()
        if only is None or job.name in only
        for t in job.fire_times(start, end)
    ]
    return sorted(fired, key=lambda pair: (pair[0], pair[1].name))
