"""Runs scheduled jobs on a simulated clock through the local bus and runner:
the same functions and services as GCP, a trading morning in seconds."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime

from spreadpilot.local.functions import available_functions, load_function
from spreadpilot.local.runner import LocalRunner
from spreadpilot.platform.clock import SimClock
from spreadpilot.platform.schedules import Job, timeline
from spreadpilot.platform.wiring import Container, use_container

log = logging.getLogger("spreadpilot.morning")


@dataclass
class MorningReport:
    ticks: int = 0
    handled: int = 0
    skipped_jobs: set[str] = field(default_factory=set)


def run_schedule(
    c: Container,
    clock: SimClock,
    start: datetime,
    end: datetime,
    *,
    before_tick: Callable[[datetime, Job], None] | None = None,
    after_tick: Callable[[datetime, Job], object] | None = None,
    hosted: Iterable[str] = (),
) -> MorningReport:
    """Fire every job due in [start, end) whose consumer is a function we have,
    delivering each tick and everything it causes before the next one.

    `after_tick` runs once the tick's messages are delivered (the demo's gateway
    agent executes the orders there); what it publishes is delivered before the
    next tick. A job due before the clock (a ladder moved it on) fires late, as a
    delayed Cloud Scheduler tick would. Jobs of a `hosted` consumer (the demo's
    gateway agent, driven by the hooks) are published too."""
    use_container(c)
    functions = set(available_functions())
    hosts = set(hosted)
    handlers = {
        sub.push: load_function(sub.push)
        for sub in c.topology.subscriptions.values()
        if sub.push in functions
    }
    runner = LocalRunner(c.bus, c.topology, handlers, clock)
    report = MorningReport()
    for moment, job in timeline(start, end):
        if job.consumer not in handlers and job.consumer not in hosts:
            report.skipped_jobs.add(job.name)
            continue
        if moment > clock.now():
            clock.set(moment)
        if before_tick:
            before_tick(moment, job)
        c.bus.publish(job.topic, job.payload(moment), {"job": job.name})
        report.ticks += 1
        report.handled += runner.run_until_idle()
        if after_tick:
            after_tick(moment, job)
            report.handled += runner.run_until_idle()
    return report
