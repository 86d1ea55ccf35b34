"""Where the strategist's signal rows come from (Google Sheet or local CSV)."""

from __future__ import annotations

from typing import Protocol


class SignalSourceError(Exception):
    """The sheet could not be read (network, auth, quota). Retryable."""


class SignalSource(Protocol):
    def read_rows(self) -> list[list[str]]:
        """Raw cell text of the signal worksheet, header row first. Rows may be
        ragged (trailing empty cells dropped), exactly as the Sheets API returns
        them with valueRenderOption=FORMATTED_VALUE."""
        ...
