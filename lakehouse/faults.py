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


RENDEZVOUS = ("commit.checked",)
"""Points where concurrent-writer tests make processes meet (:func:`rendezvous`)."""

_met: Counter[str] = Counter()


def rendezvous(name: str) -> None:
    """Wait here for the other writers of a concurrency test (``LAKEHOUSE_RENDEZVOUS_AT``).

    ``LAKEHOUSE_RENDEZVOUS_AT=commit.checked`` plus ``LAKEHOUSE_RENDEZVOUS_DIR=<folder>`` and
    ``LAKEHOUSE_RENDEZVOUS_PEERS=<n>`` (default 2) make every process that reaches the point
    for the k-th time wait until all n have reached it a k-th time (or have exited, or
    ``LAKEHOUSE_RENDEZVOUS_TIMEOUT`` seconds passed, default 2): two writers then both check a table, and both write after
    the check, every time; the race a concurrent run hits now and then, made deterministic.
    Unset (the default), it does nothing.
    """
    if name not in RENDEZVOUS:
        raise ValueError(f"unknown rendezvous {name!r}: add it to lakehouse.faults.RENDEZVOUS")
    if os.environ.get("LAKEHOUSE_RENDEZVOUS_AT") != name:
        return
    import atexit
    import time
    from pathlib import Path

    folder = Path(os.environ["LAKEHOUSE_RENDEZVOUS_DIR"])
    peers = int(os.environ.get("LAKEHOUSE_RENDEZVOUS_PEERS", "2"))
    me = os.getpid()
    if not _met:
        (folder / f"{me}.exit").unlink(missing_ok=True)
        atexit.register(lambda: (folder / f"{me}.exit").touch())
    _met[name] += 1
    k = _met[name]
    (folder / f"{me}.{name}.{k}").touch()
    deadline = time.monotonic() + float(os.environ.get("LAKEHOUSE_RENDEZVOUS_TIMEOUT", "2"))
    while time.monotonic() < deadline:
        arrived = {p.name.split(".")[0] for p in folder.glob(f"*.{name}.{k}")}
        gone = {p.name.split(".")[0] for p in folder.glob("*.exit")}
        if len(arrived | gone) >= peers:
            return
        time.sleep(0.005)
