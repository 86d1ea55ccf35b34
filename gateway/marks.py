"""The agent's marks loop: `MarksService` on its interval, beside the command loop.

Every ``poll_seconds`` it asks the service whether a run is due (every
``MARKS_INTERVAL_SECONDS`` in the session on the clock's grid, then the final
run after the close; services/marks.py) and runs it. A failed run is logged and
the next one follows on the grid: marks are a snapshot, nothing is owed.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from spreadpilot.services.marks import MarksRun, MarksService

if TYPE_CHECKING:
    from gateway.agent import Agent

log = logging.getLogger("spreadpilot.agent.marks")


class MarksLoop:
    """Runs one Agent's MarksService (see the module doc)."""

    def __init__(self, agent: Agent, *, lazy: bool = False) -> None:
        c = agent.container
        self.agent = agent
        self.service = MarksService(
            store=c.store,
            clock=c.clock,
            alerts=c.alerts,
            brokers=agent.risk_brokers,
            calendar=c.calendar,
            interval_seconds=c.settings.marks_interval_seconds,
            exercise_threshold=c.settings.pnl_exercise_threshold,
            lazy=lazy,
        )
        self.runs = 0

    async def tick(self, *, activity: bool = True) -> MarksRun | None:
        """The run due now, if any (never raises: a failure is logged)."""
        try:
            run = await self.service.tick(activity=activity)
        except Exception:
            log.exception("marks run failed; the next one follows on the grid")
            return None
        if run is not None:
            self.runs += 1
        return run

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await self.tick()
            await self.agent._wait(stop, self.agent.poll_seconds)
