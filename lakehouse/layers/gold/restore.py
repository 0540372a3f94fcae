"""A restore commit in an input's change data feed, made row-exact (README: "History and rollback").

A restore commit (``lakehouse rollback``, ``DeltaTable.restore``) writes no change data
files: it removes the files the undone commits added and adds back the files they
removed, and its feed (``load_cdf``, or :mod:`lakehouse.layers.gold.cdf`) is every row of
those files, as ``delete`` and ``insert``. A merge rewrites whole files, so most of those
rows are the same row deleted and inserted again, and a changed key shows as a delete and
an insert in one commit, which gold's readers cannot order. :func:`net` turns that feed
into the one a row-level change would have written: a row both removed and added is no
change; a key removed and added with other values is an ``update_preimage`` (the row
before the restore) and an ``update_postimage`` (the restored row); the rest are deletes
and inserts. That is the undone commits' changes reversed, so gold recomputes exactly the
partitions they touched, and an additive model subtracts what it had added.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

import polars as pl
from deltalake import DeltaTable

CDF = ("_change_type", "_commit_version", "_commit_timestamp")
_ROW, _NTH, _PAIRED = "__row", "__nth", "__paired"


def restores(table: DeltaTable, start: int, end: int) -> set[int]:
    """The versions ``start..end`` of ``table`` that are restore commits (from the log's commit infos)."""
    if end < start:
        return set()
    return {
        int(e["version"]) for e in table.history(limit=table.version() - start + 1)
        if e.get("operation") == "RESTORE" and start <= int(e["version"]) <= end
    }


def net(changes: pl.DataFrame, versions: Collection[int], keys: Sequence[str]) -> pl.DataFrame:
    """``changes`` (a change data feed) with the rows of the restore commits ``versions`` made row-exact."""
    if not versions or changes.is_empty():
        return changes
    restored = pl.col("_commit_version").is_in(list(versions))
    data = [c for c in changes.columns if c not in CDF]
    # a row's identity: its values in its commit, and which copy of them it is
    rows = changes.filter(restored).with_columns(pl.struct([*data, "_commit_version"]).hash().alias(_ROW))
    rows = rows.with_columns(pl.int_range(pl.len()).over([_ROW, "_change_type"]).alias(_NTH))
    gone = rows.filter(pl.col("_change_type") == "delete")
    back = rows.filter(pl.col("_change_type") == "insert")
    gone, back = (
        gone.join(back.select(_ROW, _NTH), on=[_ROW, _NTH], how="anti"),
        back.join(gone.select(_ROW, _NTH), on=[_ROW, _NTH], how="anti"),
    )
    by = [*keys, "_commit_version"]

    def typed(side: pl.DataFrame, other: pl.DataFrame, paired: str, alone: str) -> pl.DataFrame:
        marks = other.select(by).unique().with_columns(pl.lit(value=True).alias(_PAIRED))
        side = side.join(marks, on=by, how="left", nulls_equal=True)
        kind = pl.when(pl.col(_PAIRED).fill_null(value=False)).then(pl.lit(paired)).otherwise(pl.lit(alone))
        return side.with_columns(kind.alias("_change_type")).select(changes.columns)

    before = typed(gone, back, "update_preimage", "delete")
    after = typed(back, gone, "update_postimage", "insert")
    out = pl.concat([changes.filter(~restored), before, after], how="vertical_relaxed")
    return out.sort("_commit_version", maintain_order=True)
