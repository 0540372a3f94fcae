"""Gate results over time: every scan is appended to ``<warehouse>/_quality/scan_results``.

Query it as ``quality.scan_results`` (``lakehouse query``): one row per check per scan,
with the table, stage, window, outcome, measured value and threshold.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pyarrow as pa
from deltalake import write_deltalake

from lakehouse.commit import ensure_table
from lakehouse.config import Settings
from lakehouse.gates import GateResult
from lakehouse.storage import join, storage_options
from lakehouse.window import Window

SCAN_RESULTS_SCHEMA = pa.schema(
    [
        pa.field("scanned_at", pa.timestamp("us", tz="UTC")),
        pa.field("run_id", pa.large_string()),
        pa.field("table", pa.large_string()),
        pa.field("stage", pa.large_string()),
        pa.field("window_start", pa.timestamp("us", tz="UTC")),
        pa.field("window_end", pa.timestamp("us", tz="UTC")),
        pa.field("rows", pa.int64()),
        pa.field("check", pa.large_string()),
        pa.field("level", pa.large_string()),
        pa.field("passed", pa.bool_()),
        pa.field("value", pa.float64()),
        pa.field("threshold", pa.large_string()),
        pa.field("gate_passed", pa.bool_()),
    ]
)


def scan_results_uri(settings: Settings) -> str:
    return join(settings.warehouse, "_quality", "scan_results")


def record(settings: Settings, result: GateResult, *, window: Window | None, run_id: str | None) -> None:
    """Append one gate's checks to the scan results table (a log: a re-run scan adds rows)."""
    options = storage_options(settings)
    uri = scan_results_uri(settings)
    ensure_table(uri, SCAN_RESULTS_SCHEMA, options, change_data_feed=False)
    n = len(result.checks)
    now = datetime.now(UTC)
    data = pa.table(
        {
            "scanned_at": [now] * n,
            "run_id": [run_id] * n,
            "table": [result.table] * n,
            "stage": [result.stage] * n,
            "window_start": [window.start if window else None] * n,
            "window_end": [window.end if window else None] * n,
            "rows": [result.rows] * n,
            "check": [c.name for c in result.checks],
            "level": [c.level for c in result.checks],
            "passed": [c.passed for c in result.checks],
            "value": [c.value for c in result.checks],
            "threshold": [c.threshold for c in result.checks],
            "gate_passed": [result.passed] * n,
        },
        schema=SCAN_RESULTS_SCHEMA,
    )
    write_deltalake(uri, data, mode="append", storage_options=options)
