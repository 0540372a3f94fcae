"""Crash points for recovery tests: ``LAKEHOUSE_CRASH_AT=<point>`` kills the process there.

The process is killed with SIGKILL, as an out-of-memory kill or a lost machine would, so
nothing gets to clean up. Unset (the default), a crash point does nothing.
"""

from __future__ import annotations

import os
import signal

POINTS = (
    "bronze.committed",
    "silver.quarantined",
    "silver.committed",
    "gold.prepared",
)


def crash_point(name: str) -> None:
    """Kill this process with SIGKILL if ``LAKEHOUSE_CRASH_AT`` names this point."""
    if name not in POINTS:
        raise ValueError(f"unknown crash point {name!r}: add it to lakehouse.faults.POINTS")
    if os.environ.get("LAKEHOUSE_CRASH_AT") == name:
        os.kill(os.getpid(), signal.SIGKILL)
