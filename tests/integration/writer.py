"""A second writer for the concurrency tests: one window through the engine, in its own process.

``python -m tests.integration.writer <window end, ISO 8601>`` runs the window of the shop
pipeline that ends then (15-minute interval) against ``LAKEHOUSE_WAREHOUSE``, without
Prefect (its retries are not what these tests watch: a loser that meets a commit conflict
exits 1, and the test's next run catches up). Prints ``ok`` or the error's class and message.
"""

from __future__ import annotations

import sys
from datetime import datetime, timedelta


def main(at: str) -> int:
    from lakehouse.config import Settings
    from lakehouse.declaration import load
    from lakehouse.engine import run_window
    from lakehouse.window import window_ending_at

    window = window_ending_at(datetime.fromisoformat(at), timedelta(minutes=15))
    try:
        run_window(Settings(), load().pipeline(), window)
    except Exception as exc:  # the loser of a race: reported, the test decides
        print(f"{type(exc).__name__}: {exc}", flush=True)
        return 1
    print("ok", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
