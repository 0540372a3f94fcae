"""Builds the session's in-order warehouse in a process of its own (fixture ``in_order_build``).

``python -m tests.integration.in_order <bucket> <out>`` lands ``WINDOWS`` windows in the
warehouse the environment points at (bucket ``bucket`` of the session's moto server), runs
them in order by one ``backfill`` flow against the session's Prefect API, copies the bucket
after the windows of ``SNAPSHOTS`` and pickles what later tests read
(:class:`tests.integration.conftest.Built`) to ``out``. A process of its own, so that it
runs while the session's first tests do (it needs the environment to itself).
"""

from __future__ import annotations

import os
import pickle
import sys
from pathlib import Path


def main(bucket: str, out: str) -> int:
    from prefect.artifacts import Artifact

    from flows.backfill import backfill, listening
    from flows.inprocess import in_this_process
    from tests.integration.conftest import WINDOWS, Built
    from tests.integration.helpers import START, land, window_end

    endpoint = os.environ["AWS_ENDPOINT_URL"]
    land(WINDOWS)
    built = Built(bucket)
    with listening(lambda done: built.done(done, endpoint)), in_this_process():
        state = backfill(start=START, end=window_end(WINDOWS), interval="15m", return_state=True)
    built.completed, built.message = state.is_completed(), state.message
    built.returned = state.result() if built.completed else None
    built.flow_run_id = state.state_details.flow_run_id
    built.artifacts = {key: Artifact.get(key).data for key in ("backfill-progress", "backfill-summary")}
    Path(out).write_bytes(pickle.dumps(built))
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
