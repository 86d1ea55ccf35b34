"""Injectable time: services never call datetime.now() themselves."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime:
        """Aware UTC datetime."""
        ...

    def sleep(self, seconds: float) -> None:
        """Wait; a simulated clock advances instead of waiting."""
        ...
