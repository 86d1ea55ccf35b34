"""The route table: one declaration per endpoint, read by Flask and by the OpenAPI document.

A handler is declared once with its method, path, models and guards::

    @API.route("POST", "/followers", body=FollowerIn, audit="follower.create", ...)
    def create(ctx: Ctx, body: FollowerIn) -> Reply: ...

`install` registers every route on the app; `openapi` describes exactly the same
table, so the document cannot drift from the routes (tests/admin compares the two
against Flask's url_map). Written here rather than with a framework plugin because
the guards (PIN, audit) are part of each declaration and must show in the document.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel

Method = Literal["GET", "POST", "PUT", "PATCH", "DELETE"]
PREFIX = "/api/v1"
#: The header carrying the operator's PIN on guarded routes.
PIN_HEADER = "X-SpreadPilot-PIN"
PARAM = re.compile(r"<(?:[a-z_]+:)?([a-z_]+)>")


@dataclass(frozen=True)
class Route:
    method: Method
    path: str  # below PREFIX, Flask syntax: /followers/<follower_id>
    handler: Callable[..., Any]
    summary: str
    tag: str
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    public: bool = False  # no login needed (only /health)
    pin: bool = False  # a dangerous action: the PIN header is checked first
    audit: str | None = None  # the audit action name; every mutating route has one
    status: int = 200
    description: str = ""
    errors: tuple[int, ...] = field(default=())

    @property
    def endpoint(self) -> str:
        return f"api.{self.handler.__module__.rsplit('.', 1)[-1]}.{self.handler.__name__}"

    @property
    def params(self) -> list[str]:
        return PARAM.findall(self.path)

    @property
    def openapi_path(self) -> str:
        return PREFIX + PARAM.sub(r"{\1}", self.path)


class Api:
    def __init__(self) -> None:
        self.routes: list[Route] = []

    def route(
        self,
        method: Method,
        path: str,
        *,
        summary: str,
        tag: str,
        body: type[BaseModel] | None = None,
        query: type[BaseModel] | None = None,
        public: bool = False,
        pin: bool = False,
        audit: str | None = None,
        status: int = 200,
        errors: tuple[int, ...] = (),
    ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        def register(fn: Callable[..., Any]) -> Callable[..., Any]:
            if method != "GET" and audit is None:
                raise ValueError(f"{method} {path}: every mutating route names its audit action")
            if any(r.method == method and r.path == path for r in self.routes):
                raise ValueError(f"{method} {path} is declared twice")
            self.routes.append(
                Route(
                    method,
                    path,
                    fn,
                    summary,
                    tag,
                    body,
                    query,
                    public,
                    pin,
                    audit,
                    status,
                    (fn.__doc__ or "").strip(),
                    errors,
                )
            )
            return fn

        return register

    def openapi(self, version: str) -> dict[str, Any]:
        """The OpenAPI 3.1 document of exactly these routes."""
        paths: dict[str, dict[str, Any]] = {}
        schemas: dict[str, Any] = {"Error": _ERROR_SCHEMA}
        for route in sorted(self.routes, key=lambda r: (r.path, r.method)):
            op: dict[str, Any] = {
                "operationId": route.endpoint.removeprefix("api.").replace(".", "_"),
                "summary": route.summary,
                "tags": [route.tag],
                "parameters": [
                    {"name": p, "in": "path", "required": True, "schema": {"type": "string"}}
                    for p in route.params
                ],
                "responses": _responses(route),
            }
            if route.description:
                op["description"] = route.description
            if route.query is not None:
                op["parameters"] += _query_parameters(route.query, schemas)
            if route.pin:
                op["parameters"].append(
                    {
                        "name": PIN_HEADER,
                        "in": "header",
                        "required": True,
                        "description": "the operator's PIN (dangerous action)",
                        "schema": {"type": "string", "pattern": r"^\d{6,12}$"},
                    }
                )
                op["x-pin-required"] = True
            if route.audit:
                op["x-audit-action"] = route.audit
            if route.body is not None:
                op["requestBody"] = {
                    "required": True,
                    "content": {"application/json": {"schema": _schema(route.body, schemas)}},
                }
            op["security"] = [] if route.public else [{"bearer": []}]
            paths.setdefault(route.openapi_path, {})[route.method.lower()] = op
        return {
            "openapi": "3.1.0",
            "info": {
                "title": "SpreadPilot admin API",
                "version": version,
                "description": "The operator's console. Log in with POST /api/v1/auth/login, "
                "then send `Authorization: Bearer <token>`. Dangerous actions also need "
                f"the PIN in the {PIN_HEADER} header.",
            },
            "servers": [{"url": "/"}],
            "paths": paths,
            "components": {
                "schemas": schemas,
                "securitySchemes": {
                    "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "signed token"}
                },
            },
        }


@dataclass
class Reply:
    """A handler's answer when it is not a plain 200 with a JSON body."""

    body: Any
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)


_ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["error", "request_id"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {
                "code": {"type": "string"},
                "message": {"type": "string"},
                "fields": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {
                            "field": {"type": "string"},
                            "message": {"type": "string"},
                            "rule": {"type": "string"},
                        },
                    },
                },
                "locked_until": {"type": "string", "format": "date-time"},
            },
        },
        "request_id": {"type": "string"},
    },
}

_ERROR_TEXT = {
    400: "malformed request (bad JSON, unknown query parameter)",
    401: "not logged in, or the token expired",
    403: "wrong PIN, or the origin is not allowed",
    404: "no such resource",
    409: "conflicts with the current state (duplicate, already claimed)",
    422: "validation failed; `fields` names each bad field",
    429: "PIN locked after too many wrong attempts; `locked_until` says until when",
    503: "a dependency (store, secret) is unavailable",
}


def _responses(route: Route) -> dict[str, Any]:
    out: dict[str, Any] = {str(route.status): {"description": "success"}}
    codes = set(route.errors)
    if not route.public:
        codes.add(401)
    if route.body is not None or route.query is not None:
        codes |= {400, 422}
    if route.params:
        codes.add(404)
    if route.pin:
        codes |= {403, 429}
    codes.add(503)
    for code in sorted(codes):
        out[str(code)] = {
            "description": _ERROR_TEXT[code],
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
        }
    return out


def _schema(model: type[BaseModel], schemas: dict[str, Any]) -> dict[str, Any]:
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    schemas.update(schema.pop("$defs", {}))
    schemas[model.__name__] = schema
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def _query_parameters(model: type[BaseModel], schemas: dict[str, Any]) -> list[dict[str, Any]]:
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    schemas.update(schema.pop("$defs", {}))
    required = set(schema.get("required", []))
    return [
        {
            "name": name,
            "in": "query",
            "required": name in required,
            "schema": {k: v for k, v in prop.items() if k not in ("title", "description")},
            **({"description": prop["description"]} if "description" in prop else {}),
        }
        for name, prop in schema.get("properties", {}).items()
    ]


#: The one table every api module declares its routes on.
API = Api()
