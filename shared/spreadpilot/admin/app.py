"""The admin_api Flask app: every request gets an id, its caller checked, its errors mapped.

Per request, in order: request id and client IP; CORS (explicit origins only, never
'*'); authentication (a bearer token for the API; the page uses its cookie); the
body and query validated on the route's pydantic models (422 names each field);
the PIN for dangerous routes (403 wrong, 429 locked); the handler; one audit row for
every mutating route, whatever its outcome; one structured request log line with
Cloud Logging's httpRequest fields. No handler error reaches the caller as a
traceback: it gets a JSON error with the request id to quote.
"""

from __future__ import annotations

import io
import json
import logging
import time
import uuid
from datetime import date, datetime
from decimal import Decimal
from enum import Enum
from importlib import metadata
from typing import Any

from flask import Flask, Request, Response, g, jsonify, request
from flask.json.provider import DefaultJSONProvider
from pydantic import BaseModel, ValidationError

from spreadpilot.admin import registry
from spreadpilot.admin.auth import Auth, bearer
from spreadpilot.admin.context import Ctx
from spreadpilot.admin.errors import ApiError, BadRequest, Forbidden, Invalid, NotFoundError
from spreadpilot.admin.registry import API, PIN_HEADER, PREFIX, Reply, Route
from spreadpilot.domain.errors import DomainValidationError, from_pydantic
from spreadpilot.platform.logs import reset_context, set_context
from spreadpilot.platform.wiring import Container, container
from spreadpilot.ports.store import StoreError

log = logging.getLogger("spreadpilot.admin")
_CORS_HEADERS = f"Authorization, Content-Type, X-Request-Id, {PIN_HEADER}"
_CORS_METHODS = "GET, POST, PUT, PATCH, DELETE"
#: Never copied from a request body into the audit log.
_SECRET_FIELDS = {"password", "pin", "token"}


class _Json(DefaultJSONProvider):
    sort_keys = False

    @staticmethod
    def default(o: Any) -> Any:
        if isinstance(o, Decimal):
            return str(o)
        if isinstance(o, datetime | date):
            return o.isoformat()
        if isinstance(o, BaseModel):
            return o.model_dump(mode="json")
        if isinstance(o, Enum):
            return o.value
        return DefaultJSONProvider.default(o)


def version() -> str:
    try:
        return metadata.version("spreadpilot")
    except metadata.PackageNotFoundError:  # pragma: no cover - running from a bare checkout
        return "0+unknown"


def create_app(c: Container | None = None) -> Flask:
    """The app on `c` (default: the process's container, built from the environment)."""
    from spreadpilot.admin import api, page  # noqa: F401  (registers the routes)

    app = Flask("spreadpilot.admin")
    app.json = _Json(app)
    app.config["container"] = c
    app.extensions["spreadpilot.auth"] = None
    for route in API.routes:
        app.add_url_rule(
            PREFIX + route.path,
            route.endpoint,
            _view(route),
            methods=[route.method],
            provide_automatic_options=False,
        )
    app.register_blueprint(page.blueprint)
    app.before_request(_begin)
    app.after_request(_finish)
    app.teardown_request(lambda _exc: reset_context())
    app.register_error_handler(ApiError, _api_error)
    app.register_error_handler(404, _not_found)
    app.register_error_handler(405, _not_allowed)
    app.register_error_handler(Exception, _unexpected)
    return app


def app_container() -> Container:
    from flask import current_app

    return current_app.config["container"] or container()


def app_auth() -> Auth:
    from flask import current_app

    auth = current_app.extensions["spreadpilot.auth"]
    if auth is None:
        auth = current_app.extensions["spreadpilot.auth"] = Auth(app_container())
    return auth  # type: ignore[no-any-return]


def ctx() -> Ctx:
    return g.ctx  # type: ignore[no-any-return]


# --- per request -------------------------------------------------------------------


def _client_ip() -> str | None:
    # Google's front end appends the caller's address last; earlier entries are the
    # client's own claims and are not trusted.
    forwarded = request.headers.get("X-Forwarded-For", "")
    hops = [h.strip() for h in forwarded.split(",") if h.strip()]
    return hops[-1] if hops else request.remote_addr


def _request_id() -> str:
    trace = request.headers.get("X-Cloud-Trace-Context", "").split("/")[0]
    given = request.headers.get("X-Request-Id", "")
    if given and len(given) <= 64 and given.replace("-", "").isalnum():
        return given
    return trace or uuid.uuid4().hex


def _begin() -> Response | None:
    g.started = time.monotonic()
    g.ctx = Ctx(app_container(), _request_id(), _client_ip())
    set_context(labels={"function": "admin_api", "request_id": g.ctx.request_id})
    if request.method == "OPTIONS" and request.path.startswith(PREFIX):
        origin = request.headers.get("Origin")
        if not _origin_allowed(origin):
            raise Forbidden(
                f"origin {origin!r} may not call this API; add it to "
                "SPREADPILOT_ADMIN_CORS_ORIGINS if it is the operator's own front end"
            )
        return Response(status=204)
    return None


def _origin_allowed(origin: str | None) -> bool:
    return bool(origin) and origin in app_container().settings.admin_cors_origins


def _finish(response: Response) -> Response:
    c = g.get("ctx")
    response.headers["X-Request-Id"] = c.request_id if c else ""
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers.setdefault("Cache-Control", "no-store")
    if response.mimetype == "text/html":
        response.headers["Content-Security-Policy"] = (
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
            "frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
        )
    origin = request.headers.get("Origin")
    if request.path.startswith(PREFIX) and _origin_allowed(origin):
        assert origin is not None
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Access-Control-Allow-Headers"] = _CORS_HEADERS
        response.headers["Access-Control-Allow-Methods"] = _CORS_METHODS
        response.headers["Access-Control-Expose-Headers"] = "X-Request-Id, Retry-After"
        response.headers["Access-Control-Max-Age"] = "600"
    response.vary.add("Origin")
    started = g.get("started")
    latency = time.monotonic() - started if started else 0.0
    log.info(
        "%s %s -> %d",
        request.method,
        request.path,
        response.status_code,
        extra={
            "operation": "admin_request",
            "operator": c.operator if c else None,
            "httpRequest": {
                "requestMethod": request.method,
                "requestUrl": request.path,
                "status": response.status_code,
                "latency": f"{latency:.4f}s",
                "remoteIp": c.ip if c else None,
                "userAgent": request.headers.get("User-Agent", "")[:200],
            },
        },
    )
    return response


# --- the route wrapper -------------------------------------------------------------


def _view(route: Route) -> Any:
    def view(**params: str) -> Response:
        c = ctx()
        if not route.public:
            c.session = app_auth().verify(bearer(request.headers.get("Authorization")))
            c.operator = c.session.operator
        if route.audit is None:
            return _json(route.handler(c, **_inputs(route, params)), route.status)
        return _audited(route, c, params)

    view.__name__ = route.endpoint
    return view


def _inputs(route: Route, params: dict[str, str]) -> dict[str, Any]:
    kwargs: dict[str, Any] = dict(params)
    if route.query is not None:
        kwargs["query"] = _parse_query(route.query)
    elif request.args and route.method == "GET":
        raise BadRequest(f"{route.method} {route.path} takes no query parameters")
    if route.body is not None:
        kwargs["body"] = _parse_body(route.body)
    return kwargs


def _audited(route: Route, c: Ctx, params: dict[str, str]) -> Response:
    """One audit row per attempt, whatever its outcome: refused ones (bad input, wrong
    PIN, conflicts) say why; the body is kept except secret fields."""
    assert route.audit is not None
    resource = registry.PARAM.sub(lambda m: params.get(m.group(1), m.group(0)), route.path)
    details: dict[str, Any] = {}
    try:
        details = _body_details()
        kwargs = _inputs(route, params)
        if route.pin:
            app_auth().check_pin(c.operator or "", request.headers.get(PIN_HEADER))
            details["guard"] = "PIN verified"
        answer = route.handler(c, **kwargs)
    except ApiError as exc:
        c.audit(
            route.audit, resource, "refused", {**details, **c.audit_details, "error": exc.message}
        )
        raise
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}"[:300]
        c.audit(route.audit, resource, "failed", {**details, **c.audit_details, "error": error})
        raise
    c.audit(route.audit, resource, "ok", {**details, **c.audit_details})
    return _json(answer, route.status)


def _body_details() -> dict[str, Any]:
    """The request's JSON object minus secret fields, for the audit row (even if invalid)."""
    try:
        raw = json.loads(request.get_data(cache=True) or b"{}")
    except (ValueError, UnicodeDecodeError):
        return {"body": "(not JSON)"}
    if not isinstance(raw, dict):
        return {"body": repr(raw)[:200]}
    return {k: v for k, v in raw.items() if k.lower() not in _SECRET_FIELDS}


def _json(answer: Any, status: int) -> Response:
    if isinstance(answer, Response):
        return answer
    if isinstance(answer, Reply):
        response = jsonify(answer.body)
        response.status_code = answer.status
        response.headers.update(answer.headers)
        return response
    response = jsonify(answer)
    response.status_code = status
    return response


def _parse_body(model: type[BaseModel]) -> BaseModel:
    raw = request.get_data(cache=True)
    if not raw:
        raise BadRequest("the request needs a JSON body")
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest(f"the body is not valid JSON ({exc})") from None
    return _validated(model, data, "body")


def _parse_query(model: type[BaseModel]) -> BaseModel:
    args = request.args
    unknown = set(args) - set(model.model_fields)
    if unknown:
        raise BadRequest(
            f"unknown query parameter(s) {', '.join(sorted(unknown))}; "
            f"allowed: {', '.join(model.model_fields) or 'none'}"
        )
    return _validated(model, {k: args.get(k) for k in args}, "query")


def _validated(model: type[BaseModel], data: Any, where: str) -> BaseModel:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errors = from_pydantic(exc)
        raise Invalid(
            f"invalid {where}: " + "; ".join(f"{e.field}: {e.rule}" for e in errors),
            fields=errors,
        ) from None


def invalid(exc: DomainValidationError) -> Invalid:
    """A domain validation error as a 422 naming each field."""
    return Invalid(str(exc), fields=exc.errors)


# --- errors ------------------------------------------------------------------------


def _error_response(exc: ApiError) -> Response:
    c = g.get("ctx")
    response = jsonify(exc.body(c.request_id if c else ""))
    response.status_code = exc.status
    response.headers.update(exc.headers)
    return response


def _api_error(exc: ApiError) -> Response:
    if exc.status >= 500:
        log.error("admin_api: %s", exc.message, extra={"operation": "admin_error"})
    return _error_response(exc)


def _not_found(_exc: Exception) -> Response:
    return _error_response(
        NotFoundError(f"no route {request.method} {request.path}; see {PREFIX}/openapi.json")
    )


def _not_allowed(_exc: Exception) -> Response:
    err = ApiError(f"{request.method} is not allowed on {request.path}")
    err.status, err.code = 405, "method_not_allowed"
    return _error_response(err)


def _unexpected(exc: Exception) -> Response:
    from werkzeug.exceptions import HTTPException

    if isinstance(exc, HTTPException):
        err = ApiError(exc.description or exc.name)
        err.status, err.code = exc.code or 500, exc.name.lower().replace(" ", "_")
        return _error_response(err)
    c = g.get("ctx")
    rid = c.request_id if c else ""
    if isinstance(exc, StoreError):
        log.warning("admin_api: store unavailable: %s", exc, extra={"operation": "admin_error"})
        err = ApiError(f"the store is unavailable ({type(exc).__name__}); retry shortly")
        err.status, err.code = 503, "unavailable"
        return _error_response(err)
    log.exception("admin_api: unexpected error", extra={"operation": "admin_error"})
    err = ApiError(
        f"internal error; nothing was changed unless the audit log says so. Quote request id "
        f"{rid} to the developers."
    )
    err.status, err.code = 500, "internal"
    return _error_response(err)


# --- the Cloud Function's edge -----------------------------------------------------

_app: Flask | None = None


def handle(req: Request) -> Response:
    """Serve one request of the Functions Framework through the console app."""
    global _app
    if _app is None:
        _app = create_app()
    data = req.get_data(cache=True)
    environ = dict(req.environ)
    environ["wsgi.input"] = io.BytesIO(data)
    environ["CONTENT_LENGTH"] = str(len(data))
    with _app.request_context(environ):
        return _app.full_dispatch_request()
