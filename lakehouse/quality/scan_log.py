"""Gate results over time: every scan is appended to ``<warehouse>/_quality/scan_results``.

Query it as ``quality.scan_results`` (``lakehouse query``): one row per check per scan,
with the table, stage, window, outcome, measured value and threshold.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime

import pyarrow as pa
from deltalake import CommitProperties, DeltaTable, write_deltalake

from lakehouse import commit
from lakehouse.commit import ensure_table, write_once
from lakehouse.config import Settings
from lakehouse.dev.faults import crash_point
from lakehouse.quality.results import GateResult
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
    """The URI of the table that keeps every gate's scan results."""
    return join(settings.warehouse, "_quality", "scan_results")


def scan_app(result: GateResult, consumer: str) -> str:
    """The application id of one gate's scans of what ``consumer`` (an app id) consumes.

    (:func:`lakehouse.commit.scan_app`).
    """
    return commit.scan_app(result.table, result.stage, consumer)


def record(
    settings: Settings,
    result: GateResult,
    *,
    window: Window | None,
    run_id: str | None,
    consumed: Mapping[str, int] | None = None,
) -> bool:
    """Append one gate's checks to the scan results table, once per gated batch.

    ``consumed``: the versions the gated batch takes, by the application id of its
    consumer (``{"lakehouse:silver/orders<-bronze/orders_raw": 7}``, a gold batch's
    ``consumed``). The append carries one application transaction per entry
    (:func:`scan_app`), so a retried gate task or a concurrent run that scans the same
    batch again adds nothing. Without ``consumed`` every call appends. Returns whether
    rows were appended.
    """
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
    if not consumed:
        write_deltalake(uri, data, mode="append", storage_options=options)
        crash_point("quality.recorded")
        return True

    def write(table: DeltaTable, props: CommitProperties) -> None:
        write_deltalake(table, data, mode="append", commit_properties=props)

    transactions = {scan_app(result, consumer): version for consumer, version in consumed.items()}
    landed = write_once(uri, options, transactions=transactions, write=write)
    crash_point("quality.recorded")  # after this gate's scan, before the next gate or the merge it gates
    return not landed.already
