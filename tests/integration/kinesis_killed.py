"""A window of a Kinesis pipeline killed with SIGKILL right after its n-th bronze commit.

``python -m tests.integration.kinesis_killed <declaration file> <window end, ISO 8601> <n>``
runs that window through the engine against ``LAKEHOUSE_WAREHOUSE``; the n-th bronze batch
commit is made (the real append, its cursor included) and the process then kills itself,
before it asks the stream for the next batch: a crash between two bronze batches, at a
deterministic point. It exits 0 only if the window ended before that (the test fails then).
"""

from __future__ import annotations

import os
import signal
import sys
from datetime import datetime, timedelta
from typing import Any


def main(path: str, at: str, after: int) -> int:
    from lakehouse.config import Settings
    from lakehouse.declaration import load
    from lakehouse.engine import run_window
    from lakehouse.layers import bronze
    from lakehouse.window import window_ending_at

    append = bronze.append
    commits = 0

    def append_then_die(*args: Any, **kwargs: Any) -> Any:
        nonlocal commits
        landed = append(*args, **kwargs)
        commits += 1
        if commits == after:
            os.kill(os.getpid(), signal.SIGKILL)
        return landed

    bronze.append = append_then_die
    run_window(Settings(), load(path).pipeline(), window_ending_at(datetime.fromisoformat(at), timedelta(minutes=15)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
