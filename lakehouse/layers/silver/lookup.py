"""Key lookups that read only the data files whose statistics can hold the keys.

A micro-batch has to know where some of its keys already live in a table (the silver
partitions a key is in now, the referenced keys that exist). Scanning a key column of the
whole table makes every window cost what the table's history costs, so these lookups read
the Delta log's per-file statistics first (``min``/``max`` of the first key column, and the
partition values), keep the files whose range can hold one of the batch's keys, and read
only those files, only the columns asked for (DESIGN.md, performance principles).

How well this prunes depends on how keys cluster in files: keys that grow with time
(order numbers, ULIDs, time-prefixed ids) fall into a few recent files; random keys spread
over all of them, and then the lookup reads every file of the key column, as before.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import unquote

import polars as pl
import pyarrow as pa
import pyarrow.dataset as pds
from deltalake import DeltaTable

_STRING_STATS_PREFIX = 32
"""delta-rs truncates string statistics to this many characters; a max of this length may be a prefix."""


@dataclass(frozen=True)
class Lookup:
    """What a lookup read: the rows found, and how many files it read of how many."""

    rows: pl.DataFrame
    files_read: int
    files_total: int


def candidate_files(table: DeltaTable, column: str, values: pl.Series) -> pl.DataFrame:
    """The table's data files whose ``column`` statistics can hold one of ``values``.

    Returns the add actions (``path`` and ``partition.*`` columns) of those files. A file
    without statistics for ``column`` is always a candidate. For a partition column the
    partition value itself is compared.
    """
    actions = pl.from_arrow(pa.table(table.get_add_actions(flatten=True)))
    assert isinstance(actions, pl.DataFrame)
    if actions.is_empty() or values.is_empty():
        return actions.head(0)
    partition = f"partition.{column}"
    if partition in actions.columns:
        wanted = values.cast(actions.schema[partition], strict=False).drop_nulls().unique().implode()
        hit = pl.col(partition).is_in(wanted)
        if values.null_count():
            hit = hit | pl.col(partition).is_null()
        return actions.filter(hit)
    lo, hi = f"min.{column}", f"max.{column}"
    if lo not in actions.columns or hi not in actions.columns:
        return actions
    dtype = actions.schema[lo]
    keys = values.drop_nulls().cast(dtype, strict=False).drop_nulls().unique().sort()
    if keys.is_empty():
        return actions.head(0)
    upper = actions.get_column(hi)
    if dtype == pl.String:
        # a max truncated to the prefix length stands for every string that starts with it
        upper = pl.select(
            pl.when(upper.str.len_chars() >= _STRING_STATS_PREFIX).then(upper + "\U0010ffff").otherwise(upper)
        ).to_series()
    bounds = actions.with_columns(
        keys.search_sorted(actions.get_column(lo).fill_null(keys[0]), side="left").alias("__first"),
        keys.search_sorted(upper.fill_null(keys[0]), side="right").alias("__after"),
    )
    no_stats = pl.col(lo).is_null() | pl.col(hi).is_null()
    return bounds.filter(no_stats | (pl.col("__after") > pl.col("__first"))).drop("__first", "__after")


def rows_with_keys(
    table: DeltaTable, keys: pl.DataFrame, columns: Sequence[str]
) -> Lookup:
    """The ``columns`` of the rows of ``table`` whose key tuple (``keys``' columns) is in ``keys``.

    Only the files :func:`candidate_files` keeps for the first key column are read. The
    result holds ``columns`` (key columns included if asked for), one row per matching
    table row.
    """
    key_names = list(keys.columns)
    wanted = list(dict.fromkeys([*key_names, *columns]))
    empty = pl.DataFrame(pa.schema(table.schema().to_arrow()).empty_table()).select(wanted)
    total = len(table.file_uris())
    if keys.is_empty() or total == 0:
        return Lookup(empty.select(list(columns)), 0, total)
    chosen = candidate_files(table, key_names[0], keys.get_column(key_names[0]))
    if chosen.is_empty():
        return Lookup(empty.select(list(columns)), 0, total)
    paths = {unquote(p) for p in chosen.get_column("path")}
    dataset = table.to_pyarrow_dataset(as_large_types=True)
    fragments = [f for f in dataset.get_fragments() if _relative(f.path, table) in paths]
    subset = pds.FileSystemDataset(fragments, dataset.schema, dataset.format, dataset.filesystem)
    # no pyarrow filter: the fragments' statistics come as string_view scalars, which
    # pyarrow cannot compare with large_string columns; the few candidate files are read whole
    frame = pl.from_arrow(subset.to_table(columns=wanted))
    assert isinstance(frame, pl.DataFrame)
    cast_keys = keys.with_columns(pl.col(k).cast(frame.schema[k], strict=False) for k in key_names)
    found = frame.join(cast_keys.unique(), on=key_names, how="semi", nulls_equal=False)
    return Lookup(found.select(list(columns)), len(fragments), total)


def _relative(path: str, table: DeltaTable) -> str:
    """A fragment's path relative to the table root (fragments may carry the root)."""
    root = table.table_uri.rstrip("/")
    for prefix in (root + "/", root.split("://", 1)[-1] + "/"):
        if path.startswith(prefix):
            return path[len(prefix):]
    return path
