"""Secrets port: Secret Manager in GCP, env/file in embedded mode."""

from __future__ import annotations

from typing import Protocol


class MissingSecret(Exception):
    """A secret the caller needs is not configured. The message says where to put it."""


class Secrets(Protocol):
    def get(self, name: str) -> str:
        """The secret's current value; raises MissingSecret naming the fix."""
        ...
