"""API errors: an HTTP status, a stable code and a message that names the fix."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from spreadpilot.domain.errors import FieldError


class ApiError(Exception):
    status = 400
    code = "bad_request"

    def __init__(
        self,
        message: str,
        *,
        fields: Sequence[FieldError] = (),
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.fields = tuple(fields)
        self.headers = headers or {}
        self.extra = extra or {}

    def body(self, request_id: str) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message, **self.extra}
        if self.fields:
            error["fields"] = [
                {"field": f.field, "message": f"{f.field}: {f.rule}", "rule": f.rule}
                for f in self.fields
            ]
        return {"error": error, "request_id": request_id}


class BadRequest(ApiError):
    status, code = 400, "bad_request"


class Unauthenticated(ApiError):
    status, code = 401, "unauthenticated"

    def __init__(self, message: str) -> None:
        super().__init__(message, headers={"WWW-Authenticate": 'Bearer realm="spreadpilot"'})


class Forbidden(ApiError):
    status, code = 403, "forbidden"


class NotFoundError(ApiError):
    status, code = 404, "not_found"


class ConflictError(ApiError):
    status, code = 409, "conflict"


class Invalid(ApiError):
    status, code = 422, "validation_failed"


class Locked(ApiError):
    """The PIN is locked: 429 with the unlock time (body) and Retry-After (seconds)."""

    status, code = 429, "pin_locked"

    def __init__(self, message: str, until: datetime, now: datetime) -> None:
        seconds = max(1, int((until - now).total_seconds() + 0.999))
        super().__init__(
            message,
            headers={"Retry-After": str(seconds)},
            extra={"locked_until": until.isoformat(), "retry_after_seconds": seconds},
        )


class Unavailable(ApiError):
    status, code = 503, "unavailable"
