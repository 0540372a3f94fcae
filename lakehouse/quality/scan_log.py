"""Gate results over time: every scan is appended to ``<warehouse>/_quality/scan_results``.

Query it as ``quality.scan_results`` (``lakehouse query``): one row per check per scan,
with the table, stage, window, outcome, measured value and threshold.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
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
    results: GateResult | Sequence[GateResult],
    *,
    window: Window | None,
    run_id: str | None,
    consumed: Mapping[str, int] | None = None,
) -> bool:
    """Append the checks of one batch's gates to the scan results table, once per gated batch.

    ``results``: one gate, or every gate of one batch (a gold batch gates each changed input
    and the model's rows), appended in one commit. ``consumed``: the versions the gated
    batch takes, by the application id of its consumer
    (``{"lakehouse:silver/orders<-bronze/orders_raw": 7}``, a gold batch's ``consumed``).
    The append carries one application transaction per gate and entry (:func:`scan_app`),
    so a retried gate task or a concurrent run that scans the same batch again adds
    nothing. Without ``consumed`` every call appends. Returns whether rows were appended.
    """
    gates = [results] if isinstance(results, GateResult) else list(results)
    if not gates:
        return False
    options = storage_options(settings)
    uri = scan_results_uri(settings)
    table = ensure_table(uri, SCAN_RESULTS_SCHEMA, options, change_data_feed=False)
    now = datetime.now(UTC)
    checks = [(result, c) for result in gates for c in result.checks]
    data = pa.table(
        {
            "scanned_at": [now] * len(checks),
            "run_id": [run_id] * len(checks),
            "table": [r.table for r, _ in checks],
            "stage": [r.stage for r, _ in checks],
            "window_start": [window.start if window else None] * len(checks),
            "window_end": [window.end if window else None] * len(checks),
            "rows": [r.rows for r, _ in checks],
            "check": [c.name for _, c in checks],
            "level": [c.level for _, c in checks],
            "passed": [c.passed for _, c in checks],
            "value": [c.value for _, c in checks],
            "threshold": [c.threshold for _, c in checks],
            "gate_passed": [r.passed for r, _ in checks],
        },
        schema=SCAN_RESULTS_SCHEMA,
    )
    if not consumed:
        write_deltalake(table, data, mode="append")
        crash_point("quality.recorded")
        return True

    def write(target: DeltaTable, props: CommitProperties) -> None:
        write_deltalake(target, data, mode="append", commit_properties=props)

    transactions = {scan_app(r, consumer): version for r in gates for consumer, version in consumed.items()}
    landed = write_once(uri, options, transactions=transactions, write=write, table=table)
    crash_point("quality.recorded")  # after this batch's scans, before the next batch's gates or the commit they gate
    return not landed.already
