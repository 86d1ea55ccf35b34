"""Operator login, signed tokens, the page's session cookie and the PIN gate.

Tokens are itsdangerous-signed (HMAC-SHA512 over the payload and its issue time)
with the `admin-token-secret`; they expire after `admin_token_ttl_minutes`, timed
by the injected Clock. Stateless on purpose: any instance verifies any token, and
rotating the secret logs everyone out. The status page keeps the same token in an
HttpOnly, SameSite=Strict cookie, re-issued on each page load up to
SESSION_MAX_AGE after the password was typed; its forms also carry a CSRF token
bound to the session.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets as pysecrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from itsdangerous.timed import TimestampSigner

from spreadpilot.admin.errors import Forbidden, Locked, Unauthenticated, Unavailable
from spreadpilot.platform.passwords import BadHash, verify_secret
from spreadpilot.platform.wiring import Container
from spreadpilot.ports.clock import Clock
from spreadpilot.ports.secrets import MissingSecret
from spreadpilot.services.pin_guard import PinGuard, PinLocked, PinRejected

#: A page session (cookie) is renewed while the page is used, but never beyond this
#: long after the password was typed.
SESSION_MAX_AGE = timedelta(hours=12)
COOKIE = "sp_session"
_SALT = "spreadpilot.admin.token"
#: How long secrets read from Secret Manager are reused before being read again.
_SECRET_TTL_SECONDS = 300.0


@dataclass(frozen=True)
class Session:
    operator: str
    issued_at: datetime
    auth_time: datetime  # when the password was typed
    token_id: str


@dataclass(frozen=True)
class IssuedToken:
    token: str
    expires_at: datetime
    session: Session


def _signer(clock: Clock) -> type[TimestampSigner]:
    class ClockSigner(TimestampSigner):
        """Token age on the platform's clock (simulated in tests and the demo)."""

        def get_timestamp(self) -> int:
            return int(clock.now().timestamp())

    return ClockSigner


class Auth:
    """One per app (and so per instance); cheap per request: one HMAC, no store read."""

    def __init__(self, c: Container) -> None:
        self.c = c
        self.settings = c.settings
        self.ttl = timedelta(minutes=self.settings.admin_token_ttl_minutes)
        self._cache: dict[str, tuple[float, str]] = {}
        self._signer = _signer(c.clock)

    # -- secrets
    def secret(self, name: str) -> str:
        hit = self._cache.get(name)
        if hit and time.monotonic() - hit[0] < _SECRET_TTL_SECONDS:
            return hit[1]
        try:
            value = self.c.secrets.get(name)
        except MissingSecret as exc:
            raise Unavailable(
                f"the console is not configured: {exc} (README: Operator console, set-up)"
            ) from None
        self._cache[name] = (time.monotonic(), value)
        return value

    def _serializer(self) -> URLSafeTimedSerializer:
        key = self.secret(self.settings.admin_token_secret)
        if len(key) < 32:
            raise Unavailable(
                f"secret {self.settings.admin_token_secret!r} is shorter than 32 characters; "
                "set a random one: openssl rand -base64 48"
            )
        return URLSafeTimedSerializer(
            key, salt=_SALT, signer=self._signer, signer_kwargs={"digest_method": hashlib.sha512}
        )

    # -- login and tokens
    def check_password(self, username: str, password: str) -> bool:
        """Constant time in both the name and the password: a wrong name costs the same
        scrypt as a wrong password, so timing tells nothing."""
        encoded = self.secret(self.settings.admin_password_hash_secret)
        try:
            good_password = verify_secret(password, encoded)
        except BadHash as exc:
            raise Unavailable(
                f"secret {self.settings.admin_password_hash_secret!r} is not a password hash "
                f"({exc})"
            ) from None
        good_name = hmac.compare_digest(username.encode(), self.settings.admin_username.encode())
        return good_name and good_password

    def issue(self, operator: str, auth_time: datetime | None = None) -> IssuedToken:
        now = self.c.clock.now()
        session = Session(operator, now, auth_time or now, pysecrets.token_urlsafe(12))
        payload = {
            "sub": operator,
            "auth_time": int(session.auth_time.timestamp()),
            "jti": session.token_id,
        }
        token = self._serializer().dumps(payload)
        return IssuedToken(token, now + self.ttl, session)

    def verify(self, token: str) -> Session:
        serializer = self._serializer()
        try:
            payload, issued = serializer.loads(
                token, max_age=int(self.ttl.total_seconds()), return_timestamp=True
            )
        except SignatureExpired as exc:
            when = exc.date_signed + self.ttl if exc.date_signed else None
            at = f" at {when:%H:%M:%S} UTC" if when else ""
            raise Unauthenticated(f"the token expired{at}; log in again") from None
        except BadSignature:
            raise Unauthenticated(
                "the token is not valid (tampered, or signed with an old key); log in again"
            ) from None
        if not isinstance(payload, dict) or payload.get("sub") != self.settings.admin_username:
            raise Unauthenticated("the token names no current operator; log in again")
        return Session(
            payload["sub"],
            issued.astimezone(UTC),
            datetime.fromtimestamp(int(payload["auth_time"]), UTC),
            str(payload.get("jti", "")),
        )

    def renew(self, session: Session) -> IssuedToken | None:
        """A fresh page token for the same login, or None once SESSION_MAX_AGE has passed."""
        if self.c.clock.now() - session.auth_time > SESSION_MAX_AGE:
            return None
        return self.issue(session.operator, session.auth_time)

    def csrf_token(self, session: Session) -> str:
        key = self.secret(self.settings.admin_token_secret).encode()
        return hmac.new(key, f"csrf:{session.token_id}".encode(), hashlib.sha256).hexdigest()

    def check_csrf(self, session: Session, value: str | None) -> None:
        if not value or not hmac.compare_digest(self.csrf_token(session), value):
            raise Forbidden("the form is stale or was not sent by the status page; reload it")

    # -- the PIN gate
    def pin_guard(self) -> PinGuard:
        s = self.settings
        return PinGuard(
            self.c.store,
            self.c.clock,
            lambda: self.secret(s.admin_pin_hash_secret),
            max_attempts=s.pin_max_attempts,
            window=timedelta(minutes=s.pin_window_minutes),
            lockout=timedelta(minutes=s.pin_lockout_minutes),
        )

    def check_pin(self, operator: str, pin: str | None) -> None:
        """Forbidden (wrong, with attempts left) or Locked (429, with the unlock time)."""
        try:
            self.pin_guard().check(operator, pin or "")
        except PinLocked as exc:
            raise Locked(
                f"the PIN is locked until {exc.until:%H:%M:%S} UTC after too many wrong "
                "attempts; wait, or ask another operator",
                exc.until,
                self.c.clock.now(),
            ) from None
        except PinRejected as exc:
            left = (
                f"{exc.remaining} attempt(s) left before a "
                f"{self.settings.pin_lockout_minutes}-minute lockout"
                if exc.remaining
                else "the PIN is now locked"
            )
            what = "no PIN given" if not pin else "wrong PIN"
            raise Forbidden(f"{what}: {left}", extra={"attempts_left": exc.remaining}) from None
        except BadHash as exc:
            raise Unavailable(
                f"secret {self.settings.admin_pin_hash_secret!r} is not a PIN hash ({exc})"
            ) from None


def bearer(header: str | None) -> str:
    if not header:
        raise Unauthenticated(
            "log in first: POST /api/v1/auth/login, then send 'Authorization: Bearer <token>'"
        )
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("the Authorization header must be 'Bearer <token>'")
    return token.strip()


def session_json(token: IssuedToken) -> dict[str, Any]:
    return {
        "token": token.token,
        "token_type": "Bearer",
        "operator": token.session.operator,
        "expires_at": token.expires_at,
    }
