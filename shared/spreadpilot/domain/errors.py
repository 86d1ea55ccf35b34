"""Validation errors that name the field, the value and the rule broken."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class FieldError:
    field: str
    value: Any
    rule: str

    def __str__(self) -> str:
        return f"{self.field}={self.value!r}: {self.rule}"

    def as_dict(self) -> dict[str, str]:
        return {"field": self.field, "value": repr(self.value), "rule": self.rule}


class Unprocessable(Exception):
    """Retrying cannot help (unknown ids, forged or malformed input): the event is
    dead-lettered at once, kept whole, and the operator is told."""


class DomainValidationError(ValueError):
    """One or more fields broke a rule; str() lists every one of them."""

    def __init__(self, subject: str, errors: Sequence[FieldError]):
        self.subject = subject
        self.errors = tuple(errors)
        super().__init__(f"invalid {subject}: " + "; ".join(str(e) for e in self.errors))


def validate(model: type[M], data: Any, subject: str | None = None) -> M:
    """Build a pydantic model, turning its errors into DomainValidationError."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise DomainValidationError(subject or model.__name__, from_pydantic(exc)) from None


def from_pydantic(exc: ValidationError) -> list[FieldError]:
    errors = []
    for err in exc.errors():
        field = ".".join(str(p) for p in err["loc"]) or "(model)"
        rule = err["msg"].removeprefix("Value error, ").removeprefix("Assertion failed, ")
        errors.append(FieldError(field, err.get("input"), rule))
    return errors
