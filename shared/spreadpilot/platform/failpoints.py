"""Fail points: named places where a test can make a real process stop.

Crash-safety claims ("a poller killed between claim and publish loses
nothing") must be shown with real processes killed at the exact step, not
argued. `SPREADPILOT_FAILPOINTS="signal.after_claim=pause"` makes that step
print a marker line and block until the test SIGKILLs the process. Unset (as
in every deployment), a fail point costs one dict lookup.
"""

from __future__ import annotations

import os
import sys
import time

ENV = "SPREADPILOT_FAILPOINTS"


def _active() -> dict[str, str]:
    raw = os.environ.get(ENV, "")
    return dict(item.split("=", 1) for item in raw.split(",") if "=" in item)


def failpoint(name: str) -> None:
    action = _active().get(name)
    if action is None:
        return
    if action == "pause":
        sys.stderr.write(f"FAILPOINT {name} reached\n")
        sys.stderr.flush()
        while True:  # until killed
            time.sleep(3600)
    if action == "exit":
        os._exit(137)
    raise RuntimeError(f"failpoint {name}: unknown action {action!r} (use pause or exit)")
