"""Crash points for recovery tests: ``LAKEHOUSE_CRASH_AT=<point>`` kills the process there.

The process is killed with SIGKILL, as an out-of-memory kill or a lost machine would, so
nothing gets to clean up. Unset (the default), a crash point does nothing.

``LAKEHOUSE_CRASH_AT_HIT=<n>`` (default 1) kills the process the n-th time it reaches the
point instead of the first: a backfill with ``LAKEHOUSE_CRASH_AT=gold.prepared`` and
``LAKEHOUSE_CRASH_AT_HIT=4`` dies in its fourth window, after silver committed and before
gold did, deterministically (no timed kill).
"""

from __future__ import annotations

import os
import signal
from collections import Counter

POINTS = (
    "bronze.committed",
    "silver.quarantined",
    "silver.committed",
    "gold.prepared",
)

_hits: Counter[str] = Counter()
"""How often this process has reached each point named by ``LAKEHOUSE_CRASH_AT``."""


def crash_point(name: str) -> None:
    """Kill this process with SIGKILL if ``LAKEHOUSE_CRASH_AT`` names this point (on its n-th hit)."""
    if name not in POINTS:
        raise ValueError(f"unknown crash point {name!r}: add it to lakehouse.faults.POINTS")
    if os.environ.get("LAKEHOUSE_CRASH_AT") != name:
        return
    _hits[name] += 1
    if _hits[name] >= int(os.environ.get("LAKEHOUSE_CRASH_AT_HIT", "1")):
        os.kill(os.getpid(), signal.SIGKILL)
