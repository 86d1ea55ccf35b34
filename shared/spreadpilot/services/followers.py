"""Follower records: validated with the one canonical model before any write."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from spreadpilot.domain.errors import DomainValidationError, FieldError, validate
from spreadpilot.domain.follower import Follower
from spreadpilot.platform import collections as C
from spreadpilot.ports.store import Store


def parse_followers(raw: Sequence[Any]) -> list[Follower]:
    """All or nothing: every bad record is reported (by position and id), none is written."""
    followers: list[Follower] = []
    errors: list[FieldError] = []
    seen_ids: dict[str, int] = {}
    seen_emails: dict[str, int] = {}
    for index, item in enumerate(raw, start=1):
        label = f"followers[{index}]" + (f" ({item.get('id')})" if isinstance(item, dict) else "")
        try:
            follower = validate(Follower, item, subject=label)
        except DomainValidationError as exc:
            errors.extend(FieldError(f"{label}.{e.field}", e.value, e.rule) for e in exc.errors)
            continue
        for key, seen, what in (
            (follower.id, seen_ids, "id"),
            (follower.email.lower(), seen_emails, "email"),
        ):
            if key in seen:
                errors.append(
                    FieldError(
                        f"{label}.{what}",
                        key,
                        f"already used by followers[{seen[key]}]; must be unique",
                    )
                )
            seen[key] = index
        followers.append(follower)
    if errors:
        raise DomainValidationError("followers file", errors)
    return followers


def save_followers(store: Store, followers: Sequence[Follower]) -> None:
    for follower in followers:
        store.set(C.FOLLOWERS, follower.id, follower.to_doc())


def list_followers(store: Store) -> list[tuple[str, Follower | DomainValidationError]]:
    out: list[tuple[str, Follower | DomainValidationError]] = []
    for snap in sorted(store.query(C.FOLLOWERS), key=lambda s: s.id):
        try:
            out.append((snap.id, validate(Follower, snap.data, subject=f"follower {snap.id}")))
        except DomainValidationError as exc:
            out.append((snap.id, exc))
    return out
