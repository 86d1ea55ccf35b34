"""The alert router: every alert on the `alerts` topic -> the channels its
severity is routed to (settings.alert_routes), exactly once per dedup window.

Why it is shaped this way:
- **One schema.** Producers publish `spreadpilot.domain.alerts.Alert`; Cloud
  Monitoring incidents (a Pub/Sub notification channel on the same topic) are
  mapped onto it (open -> COMPONENT_DOWN, closed -> COMPONENT_RECOVERED).
- **Dedup across instances.** `alert_dedup/<key>` holds the cooldown window and
  the Pub/Sub messages already seen, updated in one transaction: a redelivered
  message re-uses its decision, a repeat within the cooldown is suppressed, a
  repeat after it is a new *occurrence* (sent again).
- **Nothing lost.** Every (occurrence, channel, destination) is a document in
  `alert_deliveries` (PENDING -> SENT | FAILED) created before anything is sent;
  failures stay PENDING with `next_attempt_at` and are retried by the retry pass
  (each invocation, `spreadpilot alerts retry`, and Pub/Sub redelivery: the
  handler re-raises while its own deliveries are pending). After
  `alert_max_attempts` (or a permanent refusal) the delivery is FAILED, which
  the health check counts (status == "FAILED").
- **Claimed before sending.** A send holds a lease (`claimed_until`). Telegram
  and SendGrid have no idempotency key, so a lease that expires with no outcome
  recorded (the sender crashed mid-send) is *not* re-sent: the delivery becomes
  FAILED "outcome unknown" (at most once after the claim; visible in health).
  Outbox files are idempotent (same file overwritten) and are re-sent.
- **Flood limits.** A store-backed sliding-log limiter reserves a send slot per
  chat (1/s, 20/min for groups) and per bot (30/s) in one transaction, so
  concurrent instances share it; the sender sleeps until its slot (up to
  `alert_max_wait_seconds`, else the slot is kept for the retry pass). Telegram's
  RetryAfter and SendGrid's 429 Retry-After are honoured and also block the chat.
- **No loops.** The router publishes nothing. A malformed event is dead-lettered
  by the entry wrapper, whose MESSAGE_DEAD_LETTERED alert the router routes like
  any other; a permanent failure on an alert the router itself raised is only
  logged, so its failures can never feed themselves.
"""

from __future__ import annotations

import bisect
import hashlib
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from spreadpilot.domain.alerts import Alert, AlertType, Severity
from spreadpilot.domain.calendar import NEW_YORK
from spreadpilot.platform import collections as C
from spreadpilot.platform.events import MalformedEvent, PubSubEnvelope
from spreadpilot.ports.clock import Clock
from spreadpilot.ports.messaging import Chat, ChatMessage, DeliveryError, Mail, Mailer
from spreadpilot.ports.secrets import MissingSecret
from spreadpilot.ports.store import Filter, Store, Transaction
from spreadpilot.services.delivery_retry import retry_wait

if TYPE_CHECKING:
    from spreadpilot.platform.settings import Settings
    from spreadpilot.platform.wiring import Container

log = logging.getLogger("spreadpilot.alert_router")

FUNCTION = "alert_router"
TELEGRAM, EMAIL, LOG = "telegram", "email", "log"
PENDING, SENT, FAILED = "PENDING", "SENT", "FAILED"
INCIDENT_SOURCE = "cloud-monitoring"
_EMOJI = {Severity.CRITICAL: "🔴", Severity.WARNING: "🟠", Severity.INFO: "🔵"}
_LEVEL = {Severity.CRITICAL: logging.ERROR, Severity.WARNING: logging.WARNING}
_RECENT_MESSAGES = 50  # Pub/Sub message ids remembered per dedup key (redeliveries)
_EPS = 1e-6
_HEADROOM_FROM = 10  # rules allowing this many sends per window keep one in reserve
_LEAD = 0.25  # seconds before its time a delivery may be claimed (then waits for its slot)


class DeliveryPending(Exception):
    """Some deliveries of this alert are still PENDING: re-raised so Pub/Sub
    redelivers the message later, which runs the retry pass again."""


# --- parsing ------------------------------------------------------------------------------


def parse_event(payload: Any, now: datetime) -> Alert:
    """An Alert, or a Cloud Monitoring incident mapped onto one. Anything else is
    permanent (MalformedEvent / ValidationError): dead-lettered by the entry."""
    if isinstance(payload, dict) and "incident" in payload:
        return incident_alert(payload, now)
    if not isinstance(payload, dict):
        raise MalformedEvent(f"expected a JSON object (an Alert), got {type(payload).__name__}")
    return Alert.model_validate(payload)


def incident_alert(payload: Mapping[str, Any], now: datetime) -> Alert:
    """Cloud Monitoring notification (schema version 1.2) -> Alert.

    open -> COMPONENT_DOWN (CRITICAL); closed -> COMPONENT_RECOVERED raised to
    WARNING so the all-clear reaches the chat that received the page."""
    inc = payload.get("incident")
    if not isinstance(inc, dict):
        raise MalformedEvent("Cloud Monitoring notification: field 'incident' is not an object")
    incident_id, state = inc.get("incident_id"), inc.get("state")
    if not isinstance(incident_id, str) or not incident_id:
        raise MalformedEvent("Cloud Monitoring notification: field 'incident.incident_id' missing")
    if state not in ("open", "closed"):
        raise MalformedEvent(
            f"Cloud Monitoring notification: field 'incident.state' is {state!r}; "
            "expected 'open' or 'closed'"
        )
    opened = state == "open"
    policy = str(inc.get("policy_name") or "a Cloud Monitoring policy")
    summary = str(inc.get("summary") or inc.get("condition_name") or "").strip()
    when = _epoch(inc.get("started_at" if opened else "ended_at")) or now
    details = {
        k: inc[k]
        for k in ("incident_id", "policy_name", "condition_name", "resource_name", "url", "state")
        if inc.get(k) is not None
    }
    return Alert.new(
        AlertType.COMPONENT_DOWN if opened else AlertType.COMPONENT_RECOVERED,
        f"{policy} {'is firing' if opened else 'recovered'}" + (f": {summary}" if summary else ""),
        at=when,
        dedup_key=f"incident:{incident_id}:{state}",
        source=INCIDENT_SOURCE,
        severity=Severity.CRITICAL if opened else Severity.WARNING,
        details=details,
    )


def _epoch(value: Any) -> datetime | None:
    if isinstance(value, int | float) and value > 0:
        return datetime.fromtimestamp(value, UTC)
    return None


# --- texts --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rendered:
    subject: str
    text: str


def render(alert: Alert, status_base_url: str | None) -> Rendered:
    """Short and specific: severity mark, type, the message, the follower with a
    link to its status page, the incident link, time (New York) and source."""
    message = alert.message if len(alert.message) <= 1500 else alert.message[:1497] + "..."
    lines = [f"{_EMOJI[alert.severity]} {alert.severity.value} {alert.type.value}", message]
    if alert.follower_id:
        link = (
            f": {status_base_url.rstrip('/')}/followers/{alert.follower_id}"
            if status_base_url
            else ""
        )
        lines.append(f"Follower {alert.follower_id}{link}")
    url = alert.details.get("url")
    if isinstance(url, str) and url:
        lines.append(f"Incident: {url}")
    lines.append(f"{alert.time.astimezone(NEW_YORK):%Y-%m-%d %H:%M:%S %Z} · {alert.source}")
    who = f" {alert.follower_id}" if alert.follower_id else ""
    head = " ".join(alert.message.split())
    subject = f"[SpreadPilot {alert.severity.value}] {alert.type.value}{who}: {head}"
    return Rendered(subject=subject[:150], text="\n".join(lines))


# --- flood limits -------------------------------------------------------------------------


@dataclass(frozen=True)
class Rule:
    """At most `count` sends in any window of `period` seconds."""

    count: int
    period: float


class FloodLimiter:
    """Store-backed sliding-log limiter with reservations.

    Each scope (a chat, the whole bot) keeps the times of its sends, past and
    reserved. `reserve` finds, in one transaction over every scope involved, the
    earliest time >= now at which one more send keeps every rule of every scope,
    and records it: concurrent senders (threads, function instances) get
    distinct slots and together never exceed a limit. Periods are stretched by
    `margin` to absorb the jitter between a slot and the request's arrival."""

    def __init__(self, store: Store, margin: float = 0.05) -> None:
        self.store = store
        self.margin = margin

    def reserve(
        self,
        scopes: Sequence[tuple[str, Sequence[Rule]]],
        now: datetime,
        release: datetime | None = None,
    ) -> datetime:
        """Reserve the earliest slot; `release` gives back a slot reserved earlier
        and missed (the retry pass came late), so no capacity is wasted."""
        t0 = now.timestamp()
        old = release.timestamp() if release is not None else None

        def fn(txn: Transaction) -> float:
            docs = [(k, rules, txn.get(C.ALERT_RATE, _doc_id(k)) or {}) for k, rules in scopes]
            logs: list[tuple[str, list[Rule], list[float], dict[str, Any]]] = []
            floor = t0
            for key, rules, doc in docs:
                stretched = [_with_headroom(r, self.margin) for r in rules]
                horizon = t0 - max((r.period for r in stretched), default=0.0)
                entries = sorted(float(x) for x in doc.get("slots", []) if float(x) > horizon)
                if old is not None and entries:
                    nearest = min(entries, key=lambda x: abs(x - old))
                    if abs(nearest - old) < 1e-3:
                        entries.remove(nearest)
                floor = max(floor, float(doc.get("blocked_until") or 0.0))
                logs.append((key, stretched, entries, doc))
            slot = _earliest(floor, [(entries, rules) for _, rules, entries, _ in logs])
            for key, _, entries, doc in logs:
                bisect.insort(entries, slot)
                txn.set(C.ALERT_RATE, _doc_id(key), {**doc, "scope": key, "slots": entries})
            return slot

        return datetime.fromtimestamp(self.store.transaction(fn), UTC)

    def block(self, key: str, until: datetime) -> None:
        """The service said 'retry after': no slot for this scope before `until`."""

        def fn(txn: Transaction) -> None:
            doc = txn.get(C.ALERT_RATE, _doc_id(key)) or {"scope": key, "slots": []}
            prev = float(doc.get("blocked_until") or 0.0)
            blocked = max(prev, until.timestamp())
            txn.set(C.ALERT_RATE, _doc_id(key), {**doc, "blocked_until": blocked})

        self.store.transaction(fn)


def _with_headroom(rule: Rule, margin: float) -> Rule:
    """The rule the limiter plans with: its period stretched by `margin`, and for
    wide rules (10+ per window) one message of headroom, so one send delayed past
    its slot (a busy host, a slow connection) cannot make the service count one
    too many in its window; a 1-per-window rule keeps its count."""
    count = rule.count - 1 if rule.count >= _HEADROOM_FROM else rule.count
    return Rule(count, rule.period * (1 + margin))


def _earliest(now: float, logs: Sequence[tuple[list[float], Sequence[Rule]]]) -> float:
    """Earliest t >= now that fits every rule: validity can only start at `now` or
    where an old send leaves a window (e + period)."""
    candidates = {now}
    for entries, rules in logs:
        for r in rules:
            candidates.update(e + r.period for e in entries if e + r.period > now)
    for t in sorted(candidates):
        if all(_fits(entries, r, t) for entries, rules in logs for r in rules):
            return t
    raise AssertionError("unreachable: the last candidate always fits")  # pragma: no cover


def _fits(entries: list[float], rule: Rule, t: float) -> bool:
    """Would a send at t keep every window [w, w+period) that contains t at or
    under rule.count? The fullest such windows start just after t - period or
    just after a later send leaves them (e - period)."""
    p = rule.period
    hi = bisect.bisect_left(entries, t + p)
    starts = [t - p + _EPS] + [e - p + _EPS for e in entries[bisect.bisect_right(entries, t) : hi]]
    for w in starts:
        n = bisect.bisect_left(entries, w + p) - bisect.bisect_left(entries, w)
        if n + 1 > rule.count:
            return False
    return True


def _doc_id(key: str) -> str:
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in key)[:60]
    return f"{safe}-{hashlib.sha256(key.encode()).hexdigest()[:10]}"


# --- the router ---------------------------------------------------------------------------


@dataclass(frozen=True)
class RouterConfig:
    routes: Mapping[Severity, tuple[str, ...]]
    chat_ids: tuple[str, ...] = ()
    follower_chats: Mapping[str, str] = field(default_factory=dict)
    email_to: tuple[str, ...] = ()
    cooldown: timedelta = timedelta(minutes=15)
    chat_per_second: int = 1
    group_per_minute: int = 20
    bot_per_second: int = 30
    margin: float = 0.05
    max_attempts: int = 8
    retry_base: float = 30.0
    retry_max: float = 900.0
    max_wait: float = 20.0
    lease: timedelta = timedelta(seconds=60)
    status_base_url: str | None = None

    @classmethod
    def from_settings(cls, s: Settings) -> RouterConfig:
        outbox = _delivery(s) == "outbox"
        return cls(
            routes={Severity(k): tuple(v) for k, v in s.alert_routes.items()},
            # embedded runs need no real chats: the outbox files name a placeholder
            chat_ids=s.alert_telegram_chat_ids or (("operator",) if outbox else ()),
            follower_chats=dict(s.alert_follower_chat_ids),
            email_to=s.alert_email_to or (("operator@localhost",) if outbox else ()),
            cooldown=timedelta(minutes=s.alert_cooldown_minutes),
            chat_per_second=s.alert_telegram_chat_per_second,
            group_per_minute=s.alert_telegram_group_per_minute,
            bot_per_second=s.alert_telegram_bot_per_second,
            margin=s.alert_flood_margin,
            max_attempts=s.alert_max_attempts,
            retry_base=s.alert_retry_base_seconds,
            retry_max=s.alert_retry_max_seconds,
            max_wait=s.alert_max_wait_seconds,
            lease=timedelta(seconds=s.alert_send_lease_seconds),
            status_base_url=s.status_base_url,
        )

    def chat_rules(self, chat_id: str) -> list[Rule]:
        rules = [Rule(self.chat_per_second, 1.0)]
        if chat_id.startswith("-"):  # Telegram group and supergroup ids are negative
            rules.append(Rule(self.group_per_minute, 60.0))
        return rules


@dataclass
class RouteResult:
    alert_id: str
    occurrence: int | None  # None: suppressed as a duplicate within the cooldown
    deliveries: dict[str, str] = field(default_factory=dict)  # delivery id -> status

    @property
    def suppressed(self) -> bool:
        return self.occurrence is None

    @property
    def pending(self) -> list[str]:
        return [d for d, status in self.deliveries.items() if status == PENDING]


class AlertRouter:
    def __init__(
        self,
        store: Store,
        clock: Clock,
        config: RouterConfig,
        chat: Chat | None,
        mailer: Mailer | None,
    ) -> None:
        self.store = store
        self.clock = clock
        self.config = config
        self.chat = chat
        self.mailer = mailer
        self.limiter = FloodLimiter(store, config.margin)
        self._tolerance = config.margin * 1.0  # seconds a slot may be missed by (1 s windows)

    # -- routing

    def route(self, alert: Alert, message_key: str | None = None) -> RouteResult:
        """Record and send one alert; deliveries that cannot go now stay PENDING.

        message_key identifies this publication (the Pub/Sub message id): a
        redelivery with the same key resumes the same deliveries, never adds."""
        now = self.clock.now()
        key = message_key or f"{alert.id}@{alert.time.isoformat()}"
        occurrence = self._occurrence(alert, key, now)
        self._log(alert, suppressed=occurrence is None)
        result = RouteResult(alert.id, occurrence)
        if occurrence is None:
            return result
        doc = alert.model_dump(mode="json")
        for channel in self.config.routes.get(alert.severity, (LOG,)):
            if channel == LOG:
                continue
            for dest in self._destinations(channel, alert) or ("",):
                did = f"{alert.id}-{occurrence}-{channel}-{_short(dest)}"
                self.store.create(
                    C.ALERT_DELIVERIES,
                    did,
                    {
                        "alert_id": alert.id,
                        "occurrence": occurrence,
                        "type": alert.type.value,
                        "severity": alert.severity.value,
                        "follower_id": alert.follower_id,
                        "channel": channel,
                        "destination": dest,
                        "status": PENDING,
                        "attempts": 0,
                        "last_error": None,
                        "next_attempt_at": now,
                        "claimed_until": None,
                        "sent_at": None,
                        "provider_id": None,
                        "created_at": now,
                        "alert": doc,
                    },
                )
                result.deliveries[did] = PENDING
        deadline = now + timedelta(seconds=self.config.max_wait)
        for did in result.deliveries:
            result.deliveries[did] = self.deliver(did, deadline)
        return result

    def retry_due(self, limit: int = 100, deadline: datetime | None = None) -> dict[str, str]:
        """The retry pass: every PENDING delivery due before the deadline, in the
        order of their times (flood slots are kept by waiting for each). Queries
        on status alone (a single-field index in Firestore)."""
        now = self.clock.now()
        deadline = deadline or now + timedelta(seconds=self.config.max_wait)
        due = [
            s
            for s in self.store.query(C.ALERT_DELIVERIES, [Filter("status", "==", PENDING)])
            if s.data["next_attempt_at"] <= deadline
            and (s.data.get("claimed_until") is None or s.data["claimed_until"] <= now)
        ]
        due.sort(key=lambda s: s.data["next_attempt_at"])
        out: dict[str, str] = {}
        for snap in due[:limit]:
            if self.clock.now() > deadline:
                break
            out[snap.id] = self.deliver(snap.id, deadline)
        return out

    # -- one delivery

    def deliver(self, did: str, deadline: datetime) -> str:
        """Claim, wait for the flood slot, send, record. Returns the status."""
        while True:
            waiting = self.store.get(C.ALERT_DELIVERIES, did) or {}
            due = waiting.get("next_attempt_at")
            if waiting.get("status") == PENDING and due is not None:
                now = self.clock.now()
                if now < due <= deadline:  # its flood slot or retry time is near: wait,
                    # waking a little early so the claim is done before the slot itself
                    self.clock.sleep((due - now).total_seconds() - _LEAD)
            now = self.clock.now()
            doc = self._claim(did, now)
            if doc is None:
                current = self.store.get(C.ALERT_DELIVERIES, did) or {}
                return str(current.get("status", PENDING))
            channel, dest = doc["channel"], doc["destination"]
            if doc["next_attempt_at"] > now:  # claimed within _LEAD of its time
                self.clock.sleep((doc["next_attempt_at"] - now).total_seconds())
                now = self.clock.now()
            if channel == TELEGRAM and dest:
                try:  # before the slot is taken, so the first call's getMe cannot make it late
                    warm_up = getattr(self.chat, "warm_up", None)
                    if warm_up is not None:
                        warm_up()
                except (DeliveryError, MissingSecret):
                    pass  # the send below meets the same error and records it
                slot = doc.get("slot_at")
                if slot is None or (now - slot).total_seconds() > self._tolerance:
                    slot = self.limiter.reserve(self._scopes(dest), now, release=slot)
                if slot > deadline:  # keep the slot; the retry pass sends at that time
                    self._release(did, doc, next_attempt_at=slot, slot_at=slot)
                    return PENDING
                self.clock.sleep((slot - self.clock.now()).total_seconds())
                # Woken late (a busy host): sending now could crowd the chat's next
                # slot, planned a window after this one. Give it back, take a new one.
                while (self.clock.now() - slot).total_seconds() > self._tolerance / 2:
                    slot = self.limiter.reserve(self._scopes(dest), self.clock.now(), release=slot)
                    self.clock.sleep((slot - self.clock.now()).total_seconds())
            try:
                provider_id = self._send(doc, did)
            except MissingSecret as exc:
                error, permanent, retry_after = f"missing secret: {exc}", False, None
            except DeliveryError as exc:
                error, permanent, retry_after = str(exc), exc.permanent, exc.retry_after
            except Exception as exc:  # a library or bug: kept and retried, never lost
                log.exception("unexpected error sending delivery %s", did)
                error, permanent, retry_after = f"{type(exc).__name__}: {exc}", False, None
            else:
                self._finish(did, SENT, provider_id=provider_id)
                return SENT
            status, wait = self._failed_attempt(did, doc, error, permanent, retry_after)
            if status != PENDING:
                return status
            if self.clock.now() + timedelta(seconds=wait) > deadline:
                return PENDING
            self.clock.sleep(wait)

    def _failed_attempt(
        self,
        did: str,
        doc: dict[str, Any],
        error: str,
        permanent: bool,
        retry_after: float | None,
    ) -> tuple[str, float]:
        attempts = int(doc["attempts"])
        now = self.clock.now()
        if retry_after is not None and doc["channel"] == TELEGRAM and doc["destination"]:
            self.limiter.block(_chat_key(doc["destination"]), now + timedelta(seconds=retry_after))
        if permanent or attempts >= self.config.max_attempts:
            why = "refused permanently" if permanent else f"failed after {attempts} attempts"
            log.error(
                "alert delivery %s (%s to %r) %s: %s",
                did,
                doc["channel"],
                doc["destination"],
                why,
                error,
                extra={"operation": "alert_delivery", "delivery_id": did, "status": FAILED},
            )
            self._finish(did, FAILED, error=error)
            return FAILED, 0.0
        wait = retry_wait(attempts, self.config.retry_base, self.config.retry_max, retry_after)
        log.warning(
            "alert delivery %s (%s) attempt %d failed, retrying in %.1f s: %s",
            did,
            doc["channel"],
            attempts,
            wait,
            error,
            extra={"operation": "alert_delivery", "delivery_id": did, "attempt": attempts},
        )
        self._release(did, doc, next_attempt_at=now + timedelta(seconds=wait), error=error)
        return PENDING, wait

    def _send(self, doc: dict[str, Any], did: str) -> str:
        alert = Alert.model_validate(doc["alert"])
        rendered = render(alert, self.config.status_base_url)
        channel, dest = doc["channel"], doc["destination"]
        if channel == TELEGRAM:
            if not dest:
                raise DeliveryError(
                    "no Telegram chat configured: set SPREADPILOT_ALERT_TELEGRAM_CHAT_IDS",
                    permanent=True,
                )
            if self.chat is None:
                raise DeliveryError("no Telegram channel in this process", permanent=True)
            return self.chat.send(ChatMessage(key=did, chat_id=dest, text=rendered.text))
        if channel == EMAIL:
            if not dest:
                raise DeliveryError(
                    "no alert recipient configured: set SPREADPILOT_ALERT_EMAIL_TO", permanent=True
                )
            if self.mailer is None:
                raise DeliveryError("no email channel in this process", permanent=True)
            mail = Mail(key=did, to=(dest,), subject=rendered.subject, text=rendered.text)
            return self.mailer.send(mail)
        raise DeliveryError(f"unknown channel {channel!r}", permanent=True)

    # -- store transitions

    def _claim(self, did: str, now: datetime) -> dict[str, Any] | None:
        idempotent = self._idempotent

        def fn(txn: Transaction) -> dict[str, Any] | None:
            doc = txn.get(C.ALERT_DELIVERIES, did)
            if doc is None or doc["status"] != PENDING:
                return None
            held = doc.get("claimed_until")
            if held is not None and held > now:
                return None  # another instance is sending it
            if held is not None and not idempotent(doc["channel"]):
                txn.update(
                    C.ALERT_DELIVERIES,
                    did,
                    {
                        "status": FAILED,
                        "claimed_until": None,
                        "failed_at": now,
                        "last_error": "outcome unknown: a sender claimed it and stopped before "
                        f"recording the result; {doc['channel']} has no idempotency key, so it "
                        "is not re-sent (check the chat/inbox)",
                    },
                )
                return None
            if doc["next_attempt_at"] > now + timedelta(seconds=_LEAD):
                return None
            fields = {"claimed_until": now + self.config.lease, "attempts": doc["attempts"] + 1}
            txn.update(C.ALERT_DELIVERIES, did, fields)
            return {**doc, **fields}

        return self.store.transaction(fn)

    def _release(
        self,
        did: str,
        doc: dict[str, Any],
        *,
        next_attempt_at: datetime,
        slot_at: datetime | None = None,
        error: str | None = None,
    ) -> None:
        fields: dict[str, Any] = {
            "claimed_until": None,
            "next_attempt_at": next_attempt_at,
            "slot_at": slot_at,
        }
        if error is None:  # not attempted: only waiting for its flood slot
            fields["attempts"] = doc["attempts"] - 1
        else:
            fields["last_error"] = error
        self.store.update(C.ALERT_DELIVERIES, did, fields)

    def _finish(
        self, did: str, status: str, *, provider_id: str | None = None, error: str | None = None
    ) -> None:
        now = self.clock.now()
        fields: dict[str, Any] = {"status": status, "claimed_until": None, "slot_at": None}
        if status == SENT:
            fields.update(sent_at=now, provider_id=provider_id)
        else:
            fields.update(failed_at=now, last_error=error)
        self.store.update(C.ALERT_DELIVERIES, did, fields)

    def _occurrence(self, alert: Alert, message_key: str, now: datetime) -> int | None:
        doc_id = hashlib.sha256(alert.dedup_key.encode()).hexdigest()[:32]
        cooldown = self.config.cooldown

        def fn(txn: Transaction) -> int | None:
            doc = txn.get(C.ALERT_DEDUP, doc_id)
            recent: list[dict[str, Any]] = list(doc["recent"]) if doc else []
            for seen in recent:  # a redelivered message keeps its first decision
                if seen["key"] == message_key:
                    return int(seen["occurrence"]) if seen["occurrence"] is not None else None
            occurrence: int | None
            fields: dict[str, Any]
            if doc and now < doc["window_start"] + cooldown:
                occurrence = None
                fields = {"suppressed": int(doc.get("suppressed", 0)) + 1}
            else:
                occurrence = int(doc["occurrence"]) + 1 if doc else 1
                fields = {"occurrence": occurrence, "window_start": now}
            recent = [*recent, {"key": message_key, "occurrence": occurrence}]
            recent = recent[-_RECENT_MESSAGES:]
            base = doc or {"dedup_key": alert.dedup_key, "suppressed": 0}
            txn.set(C.ALERT_DEDUP, doc_id, {**base, **fields, "recent": recent, "last_seen": now})
            return occurrence

        return self.store.transaction(fn)

    # -- helpers

    def _destinations(self, channel: str, alert: Alert) -> tuple[str, ...]:
        if channel == TELEGRAM:
            extra = self.config.follower_chats.get(alert.follower_id or "")
            chats = self.config.chat_ids + ((extra,) if extra else ())
            return tuple(dict.fromkeys(chats))
        if channel == EMAIL:
            return self.config.email_to
        return ()

    def _scopes(self, chat_id: str) -> list[tuple[str, Sequence[Rule]]]:
        return [
            (_chat_key(chat_id), self.config.chat_rules(chat_id)),
            # the bot-wide rate, paced evenly: a burst of 30 requests in one instant
            # would reach Telegram spread out and overlap the next second's window
            (
                "telegram:*",
                [Rule(self.config.bot_per_second, 1.0), Rule(1, 1.0 / self.config.bot_per_second)],
            ),
        ]

    def _idempotent(self, channel: str) -> bool:
        sender = self.chat if channel == TELEGRAM else self.mailer
        return bool(getattr(sender, "idempotent", False))

    def _log(self, alert: Alert, *, suppressed: bool) -> None:
        """Every alert is logged (the `log` channel); duplicates at INFO."""
        level = logging.INFO if suppressed else _LEVEL.get(alert.severity, logging.INFO)
        log.log(
            level,
            "%salert %s %s: %s",
            "duplicate (suppressed) " if suppressed else "",
            alert.severity.value,
            alert.type.value,
            alert.message,
            extra={
                "operation": "alert_route",
                "alert_id": alert.id,
                "alert_type": alert.type.value,
                "follower_id": alert.follower_id,
                "dedup_key": alert.dedup_key,
                "suppressed": suppressed,
            },
        )


def _chat_key(chat_id: str) -> str:
    return f"telegram:{chat_id}"


def _short(dest: str) -> str:
    return hashlib.sha256(dest.encode()).hexdigest()[:10] if dest else "none"


def _delivery(s: Settings) -> str:
    return s.alert_delivery or ("live" if s.mode == "gcp" else "outbox")


# --- wiring and the event handler --------------------------------------------------------


def build_router(c: Container) -> AlertRouter:
    """Channels from the settings: outbox files (embedded default) or the real
    Telegram and SendGrid clients; secrets are read at first send, so a missing
    one fails the delivery (kept, retried) with the secret's name, not the boot."""
    s = c.settings
    chat: Chat
    mailer: Mailer
    if _delivery(s) == "outbox":
        from spreadpilot.adapters.notify.outbox import OutboxEmail, OutboxTelegram

        chat, mailer = OutboxTelegram(s.outbox_dir), OutboxEmail(s.outbox_dir, s.alert_email_from)
    else:
        from spreadpilot.adapters.notify.sendgrid_mailer import SendGridMailer
        from spreadpilot.adapters.notify.telegram_chat import TelegramChat

        secrets = c.secrets
        chat = TelegramChat(
            lambda: secrets.get(s.alert_telegram_token_secret),
            base_url=s.alert_telegram_base_url,
            timeout=s.alert_rpc_timeout_seconds,
        )
        mailer = SendGridMailer(
            lambda: secrets.get(s.alert_sendgrid_key_secret),
            sender=s.alert_email_from,
            host=s.alert_sendgrid_host,
            timeout=s.alert_rpc_timeout_seconds,
        )
    return AlertRouter(c.store, c.clock, RouterConfig.from_settings(s), chat, mailer)


def route_alert_event(envelope: PubSubEnvelope, c: Container) -> None:
    """The alert_router function's handler: route, then run the retry pass.

    Raises DeliveryPending (transient) while this alert's deliveries are still
    pending, so Pub/Sub redelivers and retries them; a permanent failure on an
    alert this router raised itself is logged, never dead-lettered again."""
    alert = parse_event(envelope.json(), c.clock.now())
    router = c.alert_router
    try:
        result = router.route(alert, message_key=envelope.message_id or None)
    except (MalformedEvent, ValidationError) as exc:
        if alert.source != FUNCTION:
            raise
        log.critical(
            "alert_router cannot route its own alert %s (not dead-lettered again, to avoid "
            "a loop): %s",
            alert.id,
            exc,
            extra={"operation": "alert_route", "alert_id": alert.id},
        )
        return
    router.retry_due()
    if result.pending:
        raise DeliveryPending(
            f"alert {alert.id} ({alert.type.value}): {len(result.pending)} deliveries pending "
            f"({', '.join(result.pending)}); kept in alert_deliveries and retried"
        )
