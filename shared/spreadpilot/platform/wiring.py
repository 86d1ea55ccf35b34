"""Builds the adapters a process needs from the settings, lazily and once.

Heavy clients (Firestore, Pub/Sub, gspread, the NYSE calendar) are created on
first use and reused across invocations of a warm function instance.
"""

from __future__ import annotations

import json
from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING

from spreadpilot.domain.calendar import MarketCalendar
from spreadpilot.platform.clock import ScaledClock, SystemClock
from spreadpilot.platform.settings import Settings, settings
from spreadpilot.platform.topology import Topology, topology
from spreadpilot.ports.bus import Bus
from spreadpilot.ports.clock import Clock
from spreadpilot.ports.secrets import Secrets
from spreadpilot.ports.signal_source import SignalSource
from spreadpilot.ports.store import Store
from spreadpilot.services.alerts import AlertPublisher
from spreadpilot.services.claims import Claims

if TYPE_CHECKING:
    from spreadpilot.services.alert_router import AlertRouter
    from spreadpilot.services.commission_mailer import CommissionMailer
    from spreadpilot.services.dispatcher import Dispatcher
    from spreadpilot.services.recorder import Recorder
    from spreadpilot.services.signal_poller import SignalPoller


def _clock_of(s: Settings) -> Clock:
    if s.clock_start is None:
        return SystemClock()
    return ScaledClock(s.clock_start, s.clock_speed, s.clock_epoch)


class Container:
    def __init__(
        self, settings: Settings, clock: Clock | None = None, topo: Topology | None = None
    ) -> None:
        self.settings = settings
        self.clock: Clock = clock or _clock_of(settings)
        self.topology = topo or topology()

    @cached_property
    def store(self) -> Store:
        s = self.settings
        if s.mode == "gcp":
            from spreadpilot.adapters.gcp.firestore_store import FirestoreStore

            return FirestoreStore.from_project(
                s.project_id, database=s.firestore_database, timeout=s.rpc_timeout_seconds
            )
        from spreadpilot.adapters.embedded.sqlite_store import SqliteStore

        s.data_dir.mkdir(parents=True, exist_ok=True)
        return SqliteStore(s.data_dir / "store.db", durable=s.embedded_durable)

    @cached_property
    def bus(self) -> Bus:
        s = self.settings
        if s.mode == "gcp":
            from spreadpilot.adapters.gcp.pubsub_bus import PubSubBus

            return PubSubBus(s.project_id, self.topology, timeout=s.rpc_timeout_seconds)
        from spreadpilot.adapters.embedded.local_bus import LocalBus

        s.data_dir.mkdir(parents=True, exist_ok=True)
        return LocalBus(
            s.data_dir / "bus.db", self.topology, self.clock, durable=s.embedded_durable
        )

    @cached_property
    def secrets(self) -> Secrets:
        s = self.settings
        if s.mode == "gcp":
            # Read at first use with the component's own service account, which
            # Terraform lets read exactly the secrets secrets.yaml gives it.
            from spreadpilot.adapters.gcp.secret_manager import SecretManagerSecrets

            return SecretManagerSecrets(s.project_id, timeout=s.rpc_timeout_seconds)
        from spreadpilot.adapters.embedded.env_secrets import EnvFileSecrets

        return EnvFileSecrets(s.secrets_dir)

    @cached_property
    def signal_source(self) -> SignalSource:
        s = self.settings
        if s.mode == "gcp":
            from spreadpilot.adapters.sheets.gspread_source import GspreadSignalSource

            info = json.loads(self.secrets.get(s.sheet_credentials_secret))
            assert s.sheet_id is not None  # checked by Settings for gcp mode
            return GspreadSignalSource.from_service_account_info(
                info, s.sheet_id, s.sheet_worksheet, timeout=s.rpc_timeout_seconds
            )
        from spreadpilot.adapters.embedded.csv_sheet import CsvSignalSource

        return CsvSignalSource(s.sheet_csv_path)

    @cached_property
    def calendar(self) -> MarketCalendar:
        return MarketCalendar()

    @cached_property
    def claims(self) -> Claims:
        return Claims(
            self.store,
            self.clock,
            lease=timedelta(seconds=self.settings.claim_lease_seconds),
            retention=timedelta(days=self.settings.claim_retention_days),
        )

    @cached_property
    def alerts(self) -> AlertPublisher:
        return AlertPublisher(self.store, self.bus)

    def signal_poller(self) -> SignalPoller:
        from spreadpilot.services.signal_poller import PollerConfig, SignalPoller

        s = self.settings
        return SignalPoller(
            store=self.store,
            bus=self.bus,
            source=self.signal_source,
            clock=self.clock,
            calendar=self.calendar,
            claims=self.claims,
            alerts=self.alerts,
            config=PollerConfig(
                ticker=s.signal_ticker,
                poll_start=s.signal_poll_start,
                deadline=s.signal_deadline,
                reads_per_run=s.signal_reads_per_run,
                read_interval_seconds=s.signal_read_interval_seconds,
            ),
        )

    def dispatcher(self) -> Dispatcher:
        from spreadpilot.services.dispatcher import Dispatcher

        return Dispatcher(
            store=self.store,
            bus=self.bus,
            clock=self.clock,
            claims=self.claims,
            alerts=self.alerts,
            max_age=timedelta(minutes=self.settings.signal_max_age_minutes),
        )

    def recorder(self) -> Recorder:
        from spreadpilot.services.recorder import Recorder

        return Recorder(store=self.store, clock=self.clock)

    @cached_property
    def alert_router(self) -> AlertRouter:
        """Alert routing (issue 5): channels per settings, reused by a warm instance."""
        from spreadpilot.services.alert_router import build_router

        return build_router(self)

    def commission_mailer(self, dry_run: bool | None = None) -> CommissionMailer:
        """Statement mails (issue 6): SendGrid or the outbox per settings / dry_run."""
        from spreadpilot.services.commission_mailer import build_commission_mailer

        return build_commission_mailer(self, dry_run)


_current: Container | None = None


def container() -> Container:
    """The process's container, built from the environment's settings on first use."""
    global _current
    if _current is None:
        _current = Container(settings())
    return _current


def use_container(value: Container | None) -> None:
    """Install a container (local runner, tests); None resets to the environment's."""
    global _current
    _current = value
