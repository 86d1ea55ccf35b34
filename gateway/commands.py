"""The agent's command loop: scheduled risk jobs and operator commands from ``commands``.

Pulls ``agent-commands`` (the ``commands`` topic: Cloud Scheduler's ``{"job": ...}``
ticks of scheduler/jobs.yaml and the operator's emergency closes), runs one
command at a time on the agent's gateway connections (`RiskService`), and acks it.

- Every run is recorded in ``job_runs`` (job, ran_at, trade_date, status, detail,
  expire_at), SKIPPED included (holidays, outside the session, the other firing of
  ``eod-check``): health_ping counts them to find missed jobs.
- A tick older than TICK_MAX_AGE_SECONDS (an agent that was down) is recorded as
  SKIPPED, not run: the next tick follows within the minute.
- A malformed message is acked, alerted (MESSAGE_DEAD_LETTERED) and never run.
- An emergency close that could not reach every follower's gateway is nacked and
  comes back (its closes are idempotent by orderRef and command id).
- While a command runs, its ack deadline is extended every half deadline.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine, Mapping
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from gateway.pulled import keep_leased, report_malformed
from spreadpilot.domain.calendar import ny_date
from spreadpilot.ports.broker import RiskBroker
from spreadpilot.ports.bus import (
    ReceivedMessage,
)
from spreadpilot.services.emergency import (
    Command,
    CommandError,
    EmergencyClose,
    GatewayReconnect,
    JobTick,
    parse_command,
)
from spreadpilot.services.job_runs import record_job_run
from spreadpilot.services.risk import RiskConfig, RiskService, RunOutcome, RunStatus

if TYPE_CHECKING:
    from gateway.agent import Agent

log = logging.getLogger("spreadpilot.agent.commands")

SUBSCRIPTION = "agent-commands"
SOURCE = "gateway-agent"


class CommandLoop:
    """Consumes ``agent-commands`` for one Agent (see the module doc)."""

    def __init__(self, agent: Agent, *, service: RiskService | None = None) -> None:
        self.agent = agent
        c = agent.container
        self.bus = c.bus
        self.clock = c.clock
        self.store = c.store
        self.tick_max_age = timedelta(seconds=c.settings.tick_max_age_seconds)
        self.ack_deadline_seconds = c.topology.subscriptions[SUBSCRIPTION].ack_deadline_seconds
        self.service = service or RiskService(
            store=c.store,
            bus=c.bus,
            clock=c.clock,
            claims=c.claims,
            alerts=c.alerts,
            brokers=self._brokers,
            calendar=c.calendar,
            config=RiskConfig.from_settings(
                c.settings, lease_seconds=float(c.settings.claim_lease_seconds)
            ),
            holder=agent.holder,
            settlements=agent.marks.service.observe_settlements,
        )
        self.handled = 0

    def _brokers(self) -> Mapping[str, RiskBroker]:
        return self.agent.risk_brokers()

    async def run(self, stop: asyncio.Event) -> None:
        """Until `stop`: pull and run commands, one at a time."""
        while not stop.is_set():
            try:
                pulled = await self.run_once()
            except Exception:
                log.exception("command loop: a pass failed; going on")
                pulled = 0
            if not pulled:
                await self.agent._wait(stop, self.agent.poll_seconds)

    async def run_once(self, max_messages: int = 10) -> int:
        """Pull up to `max_messages` commands and run them; returns how many were pulled."""
        messages = self.bus.pull(SUBSCRIPTION, max_messages=max_messages, timeout=1.0)
        for i, msg in enumerate(messages):
            keeper = asyncio.create_task(self._leased([m.ack_id for m in messages[i:]]))
            try:
                settled = await self.handle(msg)
            finally:
                keeper.cancel()
                await asyncio.gather(keeper, return_exceptions=True)
            if settled:
                self.bus.ack(SUBSCRIPTION, [msg.ack_id])
            else:
                self.bus.nack(SUBSCRIPTION, [msg.ack_id])
            self.handled += 1
        return len(messages)

    async def process_pending(self, max_rounds: int = 100) -> int:
        total = 0
        for _ in range(max_rounds):
            n = await self.run_once()
            if not n:
                break
            total += n
        return total

    async def handle(self, msg: ReceivedMessage) -> bool:
        """Run one command; True = ack it."""
        try:
            command = parse_command(msg.data)
        except CommandError as exc:
            self._dead_letter(msg, str(exc))
            return True
        now = self.clock.now()
        job = command.job if isinstance(command, JobTick) else command.command
        if isinstance(command, JobTick) and now - msg.publish_time > self.tick_max_age:
            self._record(
                job,
                RunOutcome(
                    RunStatus.SKIPPED,
                    ny_date(now).isoformat(),
                    f"stale tick published at {msg.publish_time.isoformat()}: the next one runs",
                ),
            )
            return True
        try:
            outcome = await self._dispatch(command)
        except Exception as exc:
            log.exception("command %s failed", job)
            outcome = RunOutcome(
                RunStatus.FAILED,
                ny_date(now).isoformat(),
                f"{type(exc).__name__}: {exc}"[:500],
                settled=isinstance(command, JobTick),  # an emergency close comes back
            )
        self._record(job, outcome, msg)
        return outcome.settled

    async def _dispatch(self, command: Command) -> RunOutcome:
        if isinstance(command, EmergencyClose):
            return await self.service.emergency_close(command)
        if isinstance(command, GatewayReconnect):
            return await self.agent.force_reconnect(command)
        if command.job == "time-value-check":
            return await self.service.time_value_check()
        if command.job == "eod-check":
            return await self.service.eod_check()
        return await self.service.pre_open_check()

    def _record(self, job: str, outcome: RunOutcome, msg: ReceivedMessage | None = None) -> None:
        ran_at = self.clock.now()
        extra: dict[str, object] = {"trade_date": outcome.trade_date}
        if msg is not None:
            extra["message_id"] = msg.message_id
        try:
            record_job_run(
                self.store,
                job,
                ran_at,
                outcome.status.value,
                holder=self.agent.holder,
                detail=outcome.detail[:2000],
                **extra,
            )
        except Exception:  # the run happened; a lost record shows as a missed job
            log.exception("could not record the run of %s", job)

    def _dead_letter(self, msg: ReceivedMessage, reason: str) -> None:
        report_malformed(
            self.agent.container.alerts,
            self.clock,
            SUBSCRIPTION,
            msg,
            what="command",
            reason=reason,
            consequence="Nothing was run",
            source=SOURCE,
        )

    def _leased(self, ack_ids: list[str]) -> Coroutine[Any, Any, None]:
        """Keeps the commands leased while they run (gateway/pulled.py)."""
        return keep_leased(self.bus, self.clock, SUBSCRIPTION, ack_ids, self.ack_deadline_seconds)
