"""What a promotion reads: the bronze versions silver has not consumed (bounded), and the keys
its reference checks may match."""

from __future__ import annotations

from collections.abc import Mapping

import polars as pl
import pyarrow as pa
from deltalake import DeltaTable

from lakehouse.commit import (
    open_table,
)
from lakehouse.config import Settings
from lakehouse.layers.bronze import REPLAY_SOURCE
from lakehouse.layers.silver.batch import SilverBatch
from lakehouse.layers.silver.lookup import rows_with_keys
from lakehouse.specs import TableSpec
from lakehouse.storage import storage_options


def read_increment(bronze: DeltaTable, start: int, end: int) -> tuple[pl.DataFrame, int]:
    """Rows appended to bronze in versions ``start..end``, latest delivery of each file.

    A file delivered again under the same key (a corrected re-delivery) supersedes the
    earlier copy; a data file that a lost commit acknowledgement committed twice is read
    once (STACK.md). A replay delivers single lines, so a replayed line supersedes only an
    earlier replay of the same line: two replays of one file's lines are both kept. Returns
    the rows (with ``_commit_version``) and how many bronze rows were superseded.
    """
    reader = bronze.load_cdf(starting_version=start, ending_version=end)
    frame = pl.from_arrow(pa.table(reader.read_all()))
    assert isinstance(frame, pl.DataFrame)
    frame = frame.filter(pl.col("_change_type") == "insert")
    delivery = pl.when(pl.col("_source") == REPLAY_SOURCE).then(
        pl.format("{}#{}", pl.col("_source_position"), pl.col("_line"))
    ).otherwise(pl.col("_source_position"))
    latest = pl.col("_commit_version") == pl.col("_commit_version").max().over(delivery)
    kept = frame.filter(latest).unique(
        subset=["_source_position", "_source_version", "_line"], keep="first", maintain_order=True
    )
    return kept, frame.height - kept.height


def bronze_rows(bronze: DeltaTable, start: int, end: int) -> int | None:
    """Rows bronze's appends in versions ``start..end`` added, by their commits' own metrics."""
    total = 0
    for entry in bronze.history(limit=bronze.version() - start + 1):
        if not start <= int(entry["version"]) <= end or entry.get("operation") != "WRITE":
            continue  # the table's creation, a compaction (no data change)
        rows = (entry.get("operationMetrics") or {}).get("num_added_rows")
        if rows is None:
            return None
        total += int(rows)
    return total


def bounded_end(bronze: DeltaTable, start: int, end: int, *, max_rows: int) -> int:
    """The last bronze version of a promotion from ``start``: whole commits, about ``max_rows`` rows.

    Row counts come from the commits' metrics in the Delta log. At least one version with
    rows is taken, however large, so a promotion always makes progress (the table's
    creation, a commit with no rows, does not count as that version).
    """
    if end <= start:
        return end
    rows = {
        int(e["version"]): int((e.get("operationMetrics") or {}).get("num_added_rows") or 0)
        for e in bronze.history(limit=end - start + 1)
    }
    total, last = 0, start
    for version in range(start, end + 1):
        if total > 0 and total + rows.get(version, 0) > max_rows:
            break
        total += rows.get(version, 0)
        last = version
    return last


def referenced_values(lines: pl.DataFrame, spec: TableSpec) -> dict[str, pl.Series]:
    """The values each ``reference`` check of ``spec`` will look up, read from the raw lines."""
    out: dict[str, pl.Series] = {}
    for check in spec.checks:
        if check.ref_dataset is not None and check.column is not None:
            text = lines.select(pl.col("_raw").str.json_path_match(f"$.{check.column}").alias("v"))
            out[check.name] = text.get_column("v").drop_nulls().unique()
    return out


def reference_keys(
    settings: Settings,
    spec: TableSpec,
    lines: pl.DataFrame | Mapping[str, pl.Series],
    upstream: Mapping[str, SilverBatch] | None = None,
) -> dict[str, pl.Series]:
    """The keys each ``reference`` check of ``spec`` may match, by check name.

    Only the values the batch holds are looked up (a semi-join): its raw ``lines``, or the
    values per check already read from them. They are looked up in the referenced silver
    table as committed, reading just the files whose statistics can hold them, and in the
    rows of that dataset promoted in the same run (``upstream``, prepared first: the
    declaration orders datasets so that referenced ones come before their users).
    """
    options = storage_options(settings)
    wanted = referenced_values(lines, spec) if isinstance(lines, pl.DataFrame) else lines
    out: dict[str, pl.Series] = {}
    for check in spec.checks:
        if check.ref_dataset is None or check.ref_column is None:
            continue
        column = check.ref_column
        values = wanted.get(check.name, pl.Series(column, [], pl.String))
        parts = [pl.DataFrame({column: []}, schema={column: pl.String})]
        table = open_table(settings.table_uri("silver", check.ref_dataset), options)
        if table is not None and not values.is_empty():
            found = rows_with_keys(table, pl.DataFrame({column: values}), [column]).rows
            parts.append(found.select(pl.col(column).cast(pl.String)))
        batch = (upstream or {}).get(check.ref_dataset)
        if batch is not None:
            parts.append(
                batch.valid.select(pl.col(column).cast(pl.String)).filter(pl.col(column).is_in(values.implode()))
            )
        out[check.name] = pl.concat(parts).get_column(column).drop_nulls().unique()
    return out
