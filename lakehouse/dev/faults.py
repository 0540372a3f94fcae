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

POINTS: dict[str, str] = {
    "bronze.committed": "every dataset's bronze append of the window committed, before any silver gate",
    "quality.recorded": "one batch's gate checks appended to quality.scan_results (or found there), before "
                        "the next batch's gates or the commit they gate; a window records one append per "
                        "silver gate, then one per gold model (its inputs' gates and its own)",
    "silver.quarantined": "one dataset's rejects committed to its quarantine table, before its silver merge",
    "silver.committed": "one dataset's silver merge committed, before the next dataset's quarantine and merge",
    "gold.prepared": "every gold model recomputed and gated, before the first gold overwrite",
    "gold.committed": "one gold model's partition overwrite committed, before the next model's (after the "
                      "last one: before the run's summary)",
    "replay.appended": "a quarantine replay's bronze append committed, before the next dataset's replay "
                       "and before silver promotes the replayed rows",
}
"""Every crash point, with where the process dies; ``LAKEHOUSE_CRASH_AT_HIT`` picks which
time a point that a window reaches several times (once per dataset, gate or model) kills."""

SOURCE_POINTS: dict[str, str] = {
    "bronze.batch_committed": "one bronze batch of a source read from a cursor (an API, a database, a stream) "
                              "committed with its cursor, before the source is asked for the next batch",
}
"""Crash points inside one dataset's ingest of a cursor-read source: killed by the tests of
those sources (tests/integration/test_http_source.py), not by the crash matrix, whose shop
pipeline reads landing files only."""

_hits: Counter[str] = Counter()
"""How often this process has reached each point named by ``LAKEHOUSE_CRASH_AT``."""


def crash_point(name: str) -> None:
    """Kill this process with SIGKILL if ``LAKEHOUSE_CRASH_AT`` names this point (on its n-th hit)."""
    if name not in POINTS and name not in SOURCE_POINTS:
        msg = f"unknown crash point {name!r}: add it to lakehouse.dev.faults.POINTS"
        raise ValueError(msg)
    if os.environ.get("LAKEHOUSE_CRASH_AT") != name:
        return
    _hits[name] += 1
    if _hits[name] >= int(os.environ.get("LAKEHOUSE_CRASH_AT_HIT", "1")):
        os.kill(os.getpid(), signal.SIGKILL)


RENDEZVOUS = ("commit.checked",)
"""Points where concurrent-writer tests make processes meet (:func:`rendezvous`)."""

_met: Counter[str] = Counter()


def rendezvous(name: str) -> None:
    """Make concurrent writers of a test check, then write one after the other (``LAKEHOUSE_RENDEZVOUS_AT``).

    ``LAKEHOUSE_RENDEZVOUS_AT=commit.checked`` plus ``LAKEHOUSE_RENDEZVOUS_DIR=<folder>`` and
    ``LAKEHOUSE_RENDEZVOUS_PEERS=<n>`` (default 2) make every process that reaches the point
    for the k-th time wait until all n have reached it a k-th time (or have exited); then
    they go on one at a time, in the order of their process ids, each once the one before
    has reached the point a (k+1)-th time or exited. So every writer has checked the table
    before any writes, and each writes after the one before has committed: the race that
    two runs started together hit now and then, made deterministic. A peer that does not
    come within ``LAKEHOUSE_RENDEZVOUS_TIMEOUT`` seconds (default 2) is not waited for.
    Unset (the default), it does nothing.
    """
    if name not in RENDEZVOUS:
        msg = f"unknown rendezvous {name!r}: add it to lakehouse.dev.faults.RENDEZVOUS"
        raise ValueError(msg)
    if os.environ.get("LAKEHOUSE_RENDEZVOUS_AT") != name:
        return
    import atexit
    import time
    from pathlib import Path

    folder = Path(os.environ["LAKEHOUSE_RENDEZVOUS_DIR"])
    peers = int(os.environ.get("LAKEHOUSE_RENDEZVOUS_PEERS", "2"))
    timeout = float(os.environ.get("LAKEHOUSE_RENDEZVOUS_TIMEOUT", "2"))
    me = os.getpid()
    if not _met:
        atexit.register(lambda: (folder / f"{me}.exit").touch())
    _met[name] += 1
    k = _met[name]
    (folder / f"{me}.{name}.{k}").touch()

    def pids(pattern: str) -> set[int]:
        return {int(p.name.split(".")[0]) for p in folder.glob(pattern)}

    deadline = time.monotonic() + timeout
    while len(pids(f"*.{name}.{k}") | pids("*.exit")) < peers and time.monotonic() < deadline:
        time.sleep(0.005)
    before = sorted(p for p in pids(f"*.{name}.{k}") if p < me)
    deadline = time.monotonic() + timeout
    while before and time.monotonic() < deadline:
        released = pids(f"*.{name}.{k + 1}") | pids("*.exit")
        before = [p for p in before if p not in released]
        time.sleep(0.005)
