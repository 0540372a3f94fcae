"""Memory guard: a small window over a table of millions of rows stays under a fixed RSS bound.

The history (1M orders, 3M order lines in silver) and the window each run in a fresh
process (tests/integration/memory_probe.py), so the figure is the window's own peak, not
the test session's. Measured on the 2-core machine: 344 MB with reads bounded by the batch
(410–425 MB alone at 3a3407c, idle or beside six busy processes); 2,138 MB before, when gold
read every silver input whole (twice) and silver scanned whole key columns. Two full-suite
runs measured 651 and 818 MB (neither reproduced alone), so the probe gets a clean
environment and the bound leaves room: it is still half of what reading the history costs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

BOUND_MB = 1_000
ORDERS = 1_000_000


def probe(*args: str) -> str:
    # a clean environment: nothing an earlier test left in os.environ reaches the probe
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "TMPDIR", "PYTHONDONTWRITEBYTECODE")}
    env["SODA_CORE_TELEMETRY_ENABLED"] = "false"
    out = subprocess.run(
        [sys.executable, "-m", "tests.integration.memory_probe", *args],
        capture_output=True, text=True, timeout=300, cwd=Path(__file__).parents[2], env=env,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout


@pytest.mark.timeout(600)
def test_a_small_window_over_millions_of_rows_stays_under_the_memory_bound(tmp_path: Path) -> None:
    warehouse = str(tmp_path / "warehouse")
    probe("setup", warehouse, str(ORDERS))
    result = json.loads(probe("window", warehouse).strip().splitlines()[-1])
    # the window did its real work: new orders and lines merged, their days recomputed
    assert result["merged"]["silver.orders"] > 0 and result["merged"]["silver.order_items"] > 0
    assert "2026-01-01" in result["gold_partitions"]
    assert result["peak_mb"] < BOUND_MB, result
