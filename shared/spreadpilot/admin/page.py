"""The status page: server-rendered HTML for the operator's phone, behind the login.

Why it is built this way:

- No front-end build and nothing inline: the app's CSP allows scripts and styles
  from this origin only, so the page is Jinja templates, one stylesheet and one small
  script (the self-refresh, which waits while a PIN is being typed).
- The session is the API's signed token in an HttpOnly, SameSite=Strict cookie,
  renewed while the page is used (never beyond auth.SESSION_MAX_AGE after the
  password); every form carries a CSRF token bound to that session.
- The emergency close runs the API's own checks in the same order (session, input,
  PIN, then `services.emergency`) and writes one audit row per attempt, refused
  ones included, as the API route does. Its answer comes back through a signed
  short-lived flash cookie (Post/Redirect/Get): reloading never re-sends a close.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from flask import Blueprint, make_response, redirect, render_template, request, url_for
from itsdangerous import BadSignature, URLSafeTimedSerializer
from pydantic import ValidationError
from werkzeug.wrappers import Response

from spreadpilot.admin import auth as A
from spreadpilot.admin.api.actions import EmergencyCloseIn, known_followers
from spreadpilot.admin.app import app_auth, app_container, ctx
from spreadpilot.admin.errors import ApiError, Invalid, Locked, Unauthenticated
from spreadpilot.domain.calendar import NEW_YORK
from spreadpilot.domain.money import cents
from spreadpilot.services.console import status_view
from spreadpilot.services.emergency import request_emergency_close

blueprint = Blueprint(
    "page",
    __name__,
    template_folder="templates",
    static_folder="static",
    static_url_path="/assets",
)

#: The message of the last POST, shown once by the page it redirects to.
FLASH_COOKIE = "sp_flash"
FLASH_MAX_AGE = 120  # seconds: a redirect is followed at once; a stale message is dropped
_FLASH_SALT = "spreadpilot.admin.flash"
#: The per-follower close sends this reason (the close-all form asks for one).
DEFAULT_REASON = "status page: operator close"
CLOSE_RESOURCE = "/status/emergency-close"


# --- cookies ---------------------------------------------------------------------


def _secure() -> bool:
    s = app_container().settings
    return s.admin_secure_cookies if s.admin_secure_cookies is not None else s.mode == "gcp"


def _set_cookie(response: Response, name: str, value: str, max_age: int) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        httponly=True,
        samesite="Strict",
        secure=_secure(),
        path="/",
    )


def _clear_cookie(response: Response, name: str) -> None:
    response.delete_cookie(name, path="/", httponly=True, samesite="Strict", secure=_secure())


def _session_cookie(response: Response, issued: A.IssuedToken) -> None:
    _set_cookie(response, A.COOKIE, issued.token, int(app_auth().ttl.total_seconds()))


def _flash_serializer() -> URLSafeTimedSerializer:
    key = app_auth().secret(app_container().settings.admin_token_secret)
    return URLSafeTimedSerializer(key, salt=_FLASH_SALT)


def _flash(response: Response, kind: str, text: str) -> Response:
    _set_cookie(
        response, FLASH_COOKIE, _flash_serializer().dumps([kind, text[:1000]]), FLASH_MAX_AGE
    )
    return response


def _take_flash() -> list[tuple[str, str]]:
    """The pending message, if it is ours and fresh (signed: the page never shows text
    a third party put in a cookie)."""
    raw = request.cookies.get(FLASH_COOKIE)
    if not raw:
        return []
    try:
        kind, text = _flash_serializer().loads(raw, max_age=FLASH_MAX_AGE)
    except (BadSignature, ValueError, TypeError):
        return []
    return [(str(kind), str(text))] if kind in ("ok", "error") else []


def _redirect(endpoint: str, **values: Any) -> Response:
    return redirect(url_for(endpoint, **values), 303)


def _session() -> A.Session | None:
    token = request.cookies.get(A.COOKIE)
    if not token:
        return None
    try:
        return app_auth().verify(token)
    except Unauthenticated:
        return None


def _to_login(message: str | None = None) -> Response:
    response = _redirect("page.login_form")
    if request.cookies.get(A.COOKIE):
        _clear_cookie(response, A.COOKIE)
    if message:
        _flash(response, "error", message)
    return response


# --- login and logout ------------------------------------------------------------


@blueprint.get("/")
def index() -> Response:
    return _redirect("page.status")


def _login_page(error: str | None = None, username: str = "", status: int = 200) -> Response:
    messages = _take_flash() + ([("error", error)] if error else [])
    response = make_response(
        render_template("login.html", messages=messages, username=username), status
    )
    if request.cookies.get(FLASH_COOKIE):
        _clear_cookie(response, FLASH_COOKIE)
    return response


@blueprint.get("/login")
def login_form() -> Response:
    if _session() is not None:
        return _redirect("page.status")
    return _login_page()


@blueprint.post("/login")
def login_submit() -> Response:
    """Audited like POST /api/v1/auth/login: every attempt, the name tried, never the
    password."""
    c = ctx()
    username = request.form.get("username", "").strip()[:64]
    password = request.form.get("password", "")[:256]
    details: dict[str, Any] = {"username": username, "via": "status page"}
    try:
        ok = bool(username and password) and app_auth().check_password(username, password)
    except ApiError as exc:  # the console is not configured (a missing secret)
        c.audit("auth.login", "/login", "refused", {**details, "error": exc.message})
        return _login_page(exc.message, username, exc.status)
    if not ok:
        error = "wrong username or password"
        c.audit("auth.login", "/login", "refused", {**details, "error": error})
        return _login_page(error, username, 401)
    c.operator = username
    issued = app_auth().issue(username)
    c.audit("auth.login", "/login", "ok", details)
    response = _redirect("page.status")
    _session_cookie(response, issued)
    return response


@blueprint.post("/logout")
def logout() -> Response:
    response = _redirect("page.login_form")
    _clear_cookie(response, A.COOKIE)
    return _flash(response, "ok", "Logged out.")


# --- the status page -------------------------------------------------------------


@blueprint.get("/status")
def status() -> Response:
    session = _session()
    if session is None:
        expired = bool(request.cookies.get(A.COOKIE))
        return _to_login("Your session ended; log in again." if expired else None)
    auth = app_auth()
    renewed = auth.renew(session)
    if renewed is None:
        return _to_login(
            f"Logged in more than {A.SESSION_MAX_AGE.total_seconds() / 3600:.0f} h ago: "
            "type the password again."
        )
    # Renewed once half the token's life is gone, not on every refresh: the CSRF token
    # is bound to the session, and forms open in other tabs keep working meanwhile.
    now = app_container().clock.now()
    fresh = now - session.issued_at < auth.ttl / 2
    current = session if fresh else renewed.session
    ctx().operator = current.operator

    messages = _take_flash()
    day: date | None = None
    asked = request.args.get("date", "").strip()
    if asked:
        try:
            day = date.fromisoformat(asked)
        except ValueError:
            messages.append(("error", f"{asked!r} is not a date (YYYY-MM-DD); showing the default"))
    view = status_view(app_container(), day)
    s = app_container().settings
    html = render_template(
        "status.html",
        view=view,
        messages=messages,
        operator=current.operator,
        csrf=auth.csrf_token(current),
        refresh_seconds=s.status_refresh_seconds,
        asked_day=day.isoformat() if day else "",
        fmt=Formats(),
    )
    response = make_response(html)
    if not fresh:
        _session_cookie(response, renewed)
    if request.cookies.get(FLASH_COOKIE):
        _clear_cookie(response, FLASH_COOKIE)
    return response


@blueprint.post("/status/emergency-close")
def emergency_close() -> Response:
    """The API's emergency close from the page: one audit row per attempt, whatever
    its outcome (refused: no session, stale form, bad input, wrong or locked PIN)."""
    c = ctx()
    form = request.form
    close_all = form.get("all") == "1"
    follower = form.get("follower", "").strip()
    reason = form.get("reason", "").strip() or ("" if close_all else DEFAULT_REASON)
    details: dict[str, Any] = {
        "followers": [] if close_all or not follower else [follower],
        "all": close_all,
        "reason": reason,
        "via": "status page",
    }
    session = _session()
    try:
        if session is None:
            raise Unauthenticated("no valid session: log in again, then repeat the close")
        c.operator = session.operator
        auth = app_auth()
        auth.check_csrf(session, form.get("csrf"))
        body = _close_input(details)
        known_followers(c.c.store, body.followers)  # before the PIN: a typo costs no attempt
        auth.check_pin(session.operator, form.get("pin"))
        details["guard"] = "PIN verified"
        command = request_emergency_close(
            c.c.bus,
            c.c.clock,
            reason=body.reason,
            requested_by=session.operator,
            followers=body.followers,
            all_followers=body.all,
        )
    except ApiError as exc:
        c.audit("emergency.close", CLOSE_RESOURCE, "refused", {**details, "error": exc.message})
        if session is None:
            return _to_login(f"Emergency close NOT sent: {exc.message}")
        return _flash(_back(), "error", f"Emergency close NOT sent: {_explain(exc)}")
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}"[:300]
        c.audit("emergency.close", CLOSE_RESOURCE, "failed", {**details, "error": error})
        raise
    details["command_id"] = command.command_id
    c.audit("emergency.close", CLOSE_RESOURCE, "ok", details)
    who = "every follower" if command.all else ", ".join(command.followers)
    return _flash(
        _back(),
        "ok",
        f"Emergency close sent for {who}: command {command.command_id}. The gateway agent "
        "closes each open spread as one combo; the outcome shows in the rows and alerts.",
    )


def _close_input(details: dict[str, Any]) -> EmergencyCloseIn:
    """The API's own body model: the same rules for the same action."""
    try:
        return EmergencyCloseIn.model_validate(
            {"followers": details["followers"], "all": details["all"], "reason": details["reason"]}
        )
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'form'}: {e['msg']}" for e in exc.errors()
        )
        raise Invalid(f"invalid form: {problems}") from None


def _explain(exc: ApiError) -> str:
    """The API's message, with a lockout's end in New York time as well."""
    until = exc.extra.get("locked_until") if isinstance(exc, Locked) else None
    if until:
        at = datetime.fromisoformat(str(until)).astimezone(NEW_YORK)
        return f"{exc.message} ({at:%H:%M:%S} ET)"
    return exc.message


def _back() -> Response:
    """Back to the page the form was on (its day kept), at the top for the message."""
    day = request.args.get("date", "")
    return _redirect("page.status", **({"date": day} if day else {}))


# --- formatting for the templates ------------------------------------------------


class Formats:
    """How the page writes times and money (the read model keeps ISO text and
    Decimal strings; the page shows New York time and dollars)."""

    @staticmethod
    def time(value: str | None, with_day: bool = False) -> str:
        if not value:
            return "-"
        at = datetime.fromisoformat(value).astimezone(NEW_YORK)
        return f"{at:%a %d %b %H:%M:%S} ET" if with_day else f"{at:%H:%M:%S} ET"

    @staticmethod
    def short_time(value: str | None) -> str:
        if not value:
            return "-"
        return f"{datetime.fromisoformat(value).astimezone(NEW_YORK):%H:%M} ET"

    @staticmethod
    def usd(value: str | None) -> str:
        if value is None:
            return "-"
        try:
            amount = cents(Decimal(value))
        except InvalidOperation:
            return str(value)
        return f"-${-amount:,.2f}" if amount < 0 else f"${amount:,.2f}"

    @staticmethod
    def price(value: str | None) -> str:
        """A credit per share as $0.90, a debit as -$1.90."""
        return Formats.usd(value)

    @staticmethod
    def number(value: str | None, places: int = 2) -> str:
        if value is None:
            return "-"
        try:
            return f"{Decimal(value):.{places}f}"
        except InvalidOperation:
            return str(value)

    @staticmethod
    def signed_class(value: str | None) -> str:
        if value is None:
            return "none"
        try:
            amount = Decimal(value)
        except InvalidOperation:
            return "none"
        return "gain" if amount > 0 else "loss" if amount < 0 else "flat"

    @staticmethod
    def age(value: str | None, now: str) -> str:
        if not value:
            return ""
        delta: timedelta = datetime.fromisoformat(now) - datetime.fromisoformat(value)
        seconds = max(0, int(delta.total_seconds()))
        if seconds < 120:
            return f"{seconds} s ago"
        if seconds < 7200:
            return f"{seconds // 60} min ago"
        return f"{seconds // 3600} h ago"
