"""A table's change data feed read from its log, for the tables delta-rs cannot read it from.

delta-rs 1.6's ``load_cdf`` percent-encodes a data file's path once more than the Delta log
does (``cat=a%2520b`` is in the log for the folder ``cat=a%20b``), so the feed of a table
partitioned by a value with a space or a ``%`` fails with "not found" (STACK.md).
:func:`changes` reads the same feed from the log's commit files: the ``cdc`` files of a
version when it has any, else its added files as inserts and its removed files as deletes
(Delta protocol, "Change Data Files"), with the partition values from the log.
"""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime
from urllib.parse import unquote

import polars as pl
import pyarrow as pa
from deltalake import DeltaTable

from lakehouse.storage import ObjectStore


def needs_log_reader(exc: BaseException) -> bool:
    """Whether ``load_cdf`` failed on a twice-encoded path (a partition value with ``%`` or a space)."""
    text = str(exc)
    return "not found" in text.lower() and "%25" in text


def changes(table: DeltaTable, store: ObjectStore, start: int, end: int) -> pl.DataFrame:
    """The feed of versions ``start..end``: the table's columns, ``_change_type``,
    ``_commit_version`` and ``_commit_timestamp``, as ``load_cdf`` gives them.

    ``store`` is an object store rooted at the table (it reads ``_delta_log/`` and the
    data files named there).
    """
    schema = pl.DataFrame(pa.schema(table.schema().to_arrow()).empty_table()).schema
    partitions = set(table.metadata().partition_columns)
    frames = []
    for version in range(start, end + 1):
        actions = [json.loads(line) for line in store.get(f"_delta_log/{version:020d}.json").decode().splitlines() if line.strip()]
        info = next((a["commitInfo"] for a in actions if "commitInfo" in a), {})
        when = datetime.fromtimestamp(int(info.get("timestamp") or 0) / 1000, tz=UTC).replace(tzinfo=None)
        cdc = [a["cdc"] for a in actions if "cdc" in a]
        files = [(f, None) for f in cdc] or [
            *((a["add"], "insert") for a in actions if "add" in a and a["add"].get("dataChange", True)),
            *((a["remove"], "delete") for a in actions if "remove" in a and a["remove"].get("dataChange", True)),
        ]
        for action, change_type in files:
            frame = pl.read_parquet(io.BytesIO(store.get(unquote(action["path"]))))
            values = action.get("partitionValues") or {}
            frame = frame.with_columns(
                pl.lit(values.get(name)).cast(schema[name]).alias(name) for name in partitions
            )
            if change_type is not None:
                frame = frame.with_columns(pl.lit(change_type).alias("_change_type"))
            frames.append(
                frame.with_columns(
                    pl.lit(version).cast(pl.UInt64).alias("_commit_version"),
                    pl.lit(when).cast(pl.Datetime("ms")).alias("_commit_timestamp"),
                )
            )
    columns = [*schema, "_change_type", "_commit_version", "_commit_timestamp"]
    if not frames:
        empty = {**schema, "_change_type": pl.String(), "_commit_version": pl.UInt64(), "_commit_timestamp": pl.Datetime("ms")}
        return pl.DataFrame(schema=empty)
    return pl.concat([f.select(columns) for f in frames], how="vertical_relaxed")
