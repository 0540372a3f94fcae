"""Compaction and z-order: small files bin-packed per partition, in one commit."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pyarrow as pa
from deltalake import DeltaTable

from lakehouse.commit import file_size, open_table
from lakehouse.config import Settings
from lakehouse.maintenance.targets import Options, Target, conflicts
from lakehouse.storage import storage_options


@dataclass(frozen=True)
class Files:
    """The data files of a table's current snapshot."""

    count: int
    bytes: int


@dataclass(frozen=True)
class Optimized:
    """What :func:`optimize` did (or would do, in a dry run)."""

    table: str
    before: Files
    after: Files
    files: tuple[str, ...] = ()
    """The files rewritten (or that would be rewritten)."""
    added: int = 0
    zorder: tuple[str, ...] = ()
    """The z-order columns used (empty: plain compaction)."""
    version: int | None = None
    """The table version after the step (None: the table does not exist)."""


def _snapshot_files(table: DeltaTable) -> pa.Table:
    return pa.table(table.get_add_actions(flatten=True))


def _files(actions: pa.Table) -> Files:
    return Files(actions.num_rows, sum(actions.column("size_bytes").to_pylist()))


def _groups(actions: pa.Table, partition_by: list[str]) -> dict[tuple[Any, ...], list[tuple[str, int]]]:
    """Files (path, size) per partition value."""
    parts = [actions.column(f"partition.{p}").to_pylist() for p in partition_by]
    out: dict[tuple[Any, ...], list[tuple[str, int]]] = {}
    for i, (path, size) in enumerate(zip(actions.column("path").to_pylist(), actions.column("size_bytes").to_pylist(), strict=True)):
        out.setdefault(tuple(col[i] for col in parts), []).append((path, size))
    return out


def optimize(settings: Settings, target: Target, options: Options | None = None) -> Optimized:
    """Compact the table's small files, or z-order its partitions that hold several files.

    Compaction is delta-rs' bin-packing: within a partition, files smaller than the target
    size are rewritten together; a partition with one small file is left alone, so a
    second run does nothing. Z-order (``zorder:`` in the declaration) rewrites only the
    partitions that hold more than one file. Raises :class:`CommitConflict` when another
    writer's commit conflicts (a merge or overwrite that removed the same files): retry.
    """
    options = options or Options()
    table = open_table(target.uri, storage_options(settings))
    if table is None:
        return Optimized(target.table, Files(0, 0), Files(0, 0))
    actions = _snapshot_files(table)
    before = _files(actions)
    # the table's own target (a silver table's declared ``target_file_size``) before the default
    size = file_size(table) or options.target_size
    partition_by = list(table.metadata().partition_columns)
    groups = _groups(actions, partition_by)
    if target.zorder:
        chosen = {k: v for k, v in groups.items() if len(v) > 1 and None not in k}
    else:
        small = {k: [f for f in v if f[1] < size] for k, v in groups.items()}
        chosen = {k: v for k, v in small.items() if len(v) > 1}
    files = tuple(path for group in chosen.values() for path, _ in group)
    if options.dry_run or not files:
        return Optimized(target.table, before, before, files, zorder=target.zorder, version=table.version())
    with conflicts(target):
        if target.zorder:
            filters = None
            if partition_by:
                # one partition column per table here (the declaration's partition_by)
                filters = [(partition_by[0], "in", sorted(str(k[0]) for k in chosen))]
            metrics = table.optimize.z_order(target.zorder, partition_filters=filters, target_size=size)
        else:
            metrics = table.optimize.compact(target_size=size)
    table.update_incremental()
    after = _files(_snapshot_files(table))
    return Optimized(
        target.table, before, after, files, int(metrics.get("numFilesAdded", 0)), target.zorder, table.version()
    )


# ----------------------------------------------------------------------------- consumers
