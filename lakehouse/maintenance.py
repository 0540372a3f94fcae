"""Maintenance: compaction, z-order, log checkpoints and clean-up, and a vacuum bounded by consumers.

Micro-batches write a few small files per table per window; left alone, reads slow down with
history (STACK.md: delta-rs #2781, #3565). Per table, :func:`maintain` runs three steps, each
of which is its own function so that an orchestrator can retry one step on a conflict:

1. :func:`optimize` bin-packs small files into files of about :data:`TARGET_FILE_SIZE`
   (``optimize.compact``), or, where the declaration names ``zorder:`` columns, rewrites the
   partitions holding more than one file clustered by them (``optimize.z_order``). Both
   commit with ``dataChange = false``: the table's rows do not change, and the change data
   feed of such a commit is empty (tested), so silver and gold, which read bronze's and
   silver's feeds, see no row twice.
2. :func:`tidy_log` writes a checkpoint at the current version and deletes expired log
   entries (``delta.logRetentionDuration``, 30 days by default), unless a consumer still
   needs a version whose log entry would expire.
3. :func:`vacuum` deletes the data files that commits removed more than ``retention`` hours
   ago, with the retention bounded by the slowest consumer (below).

**The retention rule.** A table's consumers read its history: silver reads bronze's change
data feed from the version after the one it consumed (``committed_version(silver,
lakehouse:silver/<t><-bronze/<t>_raw) + 1``), gold reads each silver input's feed the same
way and loads the input's snapshot at the consumed version. Such a reader needs every data
file that was still in the table at or after the oldest version ``u`` it has not consumed,
i.e. every file removed (tombstoned) at version ``u`` or later. Vacuum deletes a removed file
when its removal is older than the retention, so::

    retention_hours = max(configured, ceil(hours since the commit of u) + margin)

where ``u`` is the minimum over the table's consumers (version 0 if a consumer never
consumed, or its table does not exist yet). A consumer that is caught up contributes its
age 0, so the margin (1 hour by default) still covers commits that land while maintenance
runs and clock skew between writers. If a consumer's progress cannot be read (its table
is unreadable, or the commit of ``u`` is no longer in the log), the table is not vacuumed
at all. Quarantine tables are written by silver's promotion from the same bronze read,
so their position in bronze is silver's. Tables nobody reads history of (gold, quarantine,
``_quality/scan_results``) are vacuumed with the configured retention, which also protects
readers of a recent snapshot. Vacuum runs in delta-rs' "lite" mode: only files removed by a
commit are candidates, never files that are not in the log (a writer's uncommitted file).

Every step reports what it would do with ``dry_run=True`` and then changes nothing (no
commit, no deleted file, no checkpoint).

Example::

    from lakehouse import maintenance
    from lakehouse.config import Settings
    from lakehouse.declaration import load

    settings = Settings()
    for target in maintenance.targets(settings, load().pipeline("shop")):
        print(maintenance.maintain(settings, target, maintenance.Options(dry_run=True)))
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import unquote

import pyarrow as pa
from deltalake import DeltaTable
from deltalake.exceptions import CommitFailedError

from lakehouse.commit import app_id, committed_version, open_table
from lakehouse.config import Settings
from lakehouse.errors import CommitConflict, ConfigError
from lakehouse.layers.bronze import bronze_name
from lakehouse.quality.scan_log import scan_results_uri
from lakehouse.specs import Pipeline
from lakehouse.storage import ObjectStore, open_store, storage_options

TARGET_FILE_SIZE = 100 * 1024 * 1024
"""Files are compacted to about 100 MiB: delta-rs' default when ``delta.targetFileSize`` is unset."""

DEFAULT_RETENTION_HOURS = 168
"""Removed files are kept a week at least: the Delta default ``delta.deletedFileRetentionDuration``."""

DEFAULT_MARGIN_HOURS = 1
"""Added to the age of the oldest unconsumed commit (in-flight commits, clock skew)."""

DEFAULT_LOG_RETENTION = timedelta(days=30)
"""``delta.logRetentionDuration`` when a table does not set it."""


@dataclass(frozen=True)
class Consumer:
    """A table that reads another's history, and the application id its progress is under."""

    table: str
    """``silver.orders``."""
    uri: str
    app: str


@dataclass(frozen=True)
class Target:
    """One table to maintain."""

    table: str
    """``layer.name``: ``bronze.orders_raw``, ``quality.scan_results`` …"""
    uri: str
    zorder: tuple[str, ...] = ()
    consumers: tuple[Consumer, ...] = ()


@dataclass(frozen=True)
class Options:
    """How maintenance runs."""

    retention_hours: int = DEFAULT_RETENTION_HOURS
    """The configured retention of removed files; consumers can only make it longer."""
    margin_hours: int = DEFAULT_MARGIN_HOURS
    target_size: int = TARGET_FILE_SIZE
    dry_run: bool = False
    """List what would be done; change nothing."""


def targets(settings: Settings, pipeline: Pipeline) -> list[Target]:
    """Every table of ``pipeline`` (bronze, silver, quarantine, gold) and the scan results.

    Each carries its declared z-order columns and the consumers that read its history:
    a dataset's bronze table is read by its silver table, a silver table by the gold
    models that name it.
    """
    out = []
    for ds in pipeline.datasets:
        name = ds.spec.name
        raw = bronze_name(ds.spec)
        silver_reader = Consumer(f"silver.{name}", settings.table_uri("silver", name), app_id(f"silver/{name}", f"bronze/{raw}"))
        out.append(Target(f"bronze.{raw}", settings.table_uri("bronze", raw), consumers=(silver_reader,)))
    for ds in pipeline.datasets:
        name = ds.spec.name
        readers = tuple(
            Consumer(f"gold.{m.spec.name}", settings.table_uri("gold", m.spec.name), app_id(f"gold/{m.spec.name}", f"silver/{name}"))
            for m in pipeline.models
            if name in m.inputs
        )
        out.append(Target(f"silver.{name}", settings.table_uri("silver", name), ds.zorder, readers))
    out += [Target(f"quarantine.{ds.spec.name}", settings.table_uri("quarantine", ds.spec.name)) for ds in pipeline.datasets]
    out += [Target(f"gold.{m.spec.name}", settings.table_uri("gold", m.spec.name), m.zorder) for m in pipeline.models]
    out.append(Target("quality.scan_results", scan_results_uri(settings)))
    return out


def select(candidates: list[Target], names: Iterable[str]) -> list[Target]:
    """The targets named ``layer.table`` (or just ``table``: every layer's); unknown names raise."""
    wanted = list(names)
    chosen = [t for t in candidates if any(n in (t.table, t.table.split(".", 1)[1]) for n in wanted)]
    unknown = [n for n in wanted if not any(n in (t.table, t.table.split(".", 1)[1]) for t in candidates)]
    if unknown:
        raise ConfigError(f"no table {', '.join(unknown)}; tables: {', '.join(t.table for t in candidates)}")
    return chosen


@contextmanager
def _conflicts(target: Target) -> Iterator[None]:
    """A concurrent commit that conflicts is a :class:`CommitConflict` (transient: retry the step)."""
    try:
        yield
    except CommitFailedError as exc:
        raise CommitConflict(f"{target.table}: maintenance conflicted with another writer: {exc}") from exc


# ----------------------------------------------------------------------------- optimize


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
    partition_by = list(table.metadata().partition_columns)
    groups = _groups(actions, partition_by)
    if target.zorder:
        chosen = {k: v for k, v in groups.items() if len(v) > 1 and None not in k}
    else:
        small = {k: [f for f in v if f[1] < options.target_size] for k, v in groups.items()}
        chosen = {k: v for k, v in small.items() if len(v) > 1}
    files = tuple(path for group in chosen.values() for path, _ in group)
    if options.dry_run or not files:
        return Optimized(target.table, before, before, files, zorder=target.zorder, version=table.version())
    with _conflicts(target):
        if target.zorder:
            filters = None
            if partition_by:
                # one partition column per table here (the declaration's partition_by)
                filters = [(partition_by[0], "in", sorted(str(k[0]) for k in chosen))]
            metrics = table.optimize.z_order(target.zorder, partition_filters=filters, target_size=options.target_size)
        else:
            metrics = table.optimize.compact(target_size=options.target_size)
    table.update_incremental()
    after = _files(_snapshot_files(table))
    return Optimized(
        target.table, before, after, files, int(metrics.get("numFilesAdded", 0)), target.zorder, table.version()
    )


# ----------------------------------------------------------------------------- consumers


@dataclass(frozen=True)
class Horizon:
    """How far the slowest consumer of a table has read it."""

    oldest_unconsumed: int | None = None
    """The oldest version some consumer has not read yet (None: every consumer is caught up)."""
    age_hours: float = 0.0
    """Hours since the commit of ``oldest_unconsumed`` (0 when caught up)."""
    needed_age_hours: float = 0.0
    """Hours since the oldest version a consumer still loads (the one before ``oldest_unconsumed``)."""
    unreadable: str | None = None
    """Why the consumers' progress cannot be read (then nothing is deleted)."""


def _commit_times(table: DeltaTable, since: int) -> dict[int, datetime]:
    """Commit timestamps of versions ``since`` .. current."""
    entries = table.history(limit=table.version() - since + 1)
    return {
        int(e["version"]): datetime.fromtimestamp(e["timestamp"] / 1000, tz=UTC)
        for e in entries
        if "version" in e and "timestamp" in e
    }


def horizon(settings: Settings, target: Target, table: DeltaTable, *, now: datetime | None = None) -> Horizon:
    """The oldest version of ``table`` that one of the target's consumers has not read yet."""
    now = now or datetime.now(UTC)
    if not target.consumers:
        return Horizon()
    options = storage_options(settings)
    current = table.version()
    oldest = current + 1
    for consumer in target.consumers:
        try:
            done = committed_version(open_table(consumer.uri, options), consumer.app)
        except Exception as exc:  # any failure to read progress means: delete nothing
            return Horizon(unreadable=f"cannot read the progress of {consumer.table}: {exc}")
        oldest = min(oldest, 0 if done is None else done + 1)
    if oldest > current:
        return Horizon()
    needed = max(oldest - 1, 0)
    times = _commit_times(table, needed)
    if oldest not in times or needed not in times:
        return Horizon(oldest, unreadable=f"the commit of version {oldest} (the oldest a consumer has not read) is not in the log")
    return Horizon(oldest, _hours_since(times[oldest], now), _hours_since(times[needed], now))


def _hours_since(moment: datetime, now: datetime) -> float:
    return max((now - moment).total_seconds() / 3600, 0.0)


def retention_hours(h: Horizon, options: Options, *, has_consumers: bool) -> int:
    """``max(configured, ceil(age of the oldest unconsumed commit) + margin)``; see the module doc."""
    if not has_consumers:
        return options.retention_hours
    return max(options.retention_hours, math.ceil(h.age_hours) + options.margin_hours)


# ----------------------------------------------------------------------------- log


@dataclass(frozen=True)
class LogTidied:
    """What :func:`tidy_log` did (or would do)."""

    table: str
    checkpoint: int | None = None
    """The version checkpointed (or that would be)."""
    cleaned: bool = False
    """Whether expired log entries were deleted (or would be)."""
    note: str = ""


_INTERVAL = re.compile(r"^\s*(?:interval\s+)?(\d+)\s*(second|minute|hour|day|week)s?\s*$", re.IGNORECASE)


def log_retention(table: DeltaTable) -> timedelta | None:
    """The table's ``delta.logRetentionDuration`` (30 days if unset; None if unreadable)."""
    text = table.metadata().configuration.get("delta.logRetentionDuration")
    if text is None:
        return DEFAULT_LOG_RETENTION
    m = _INTERVAL.match(text)
    if not m:
        return None
    return timedelta(**{f"{m.group(2).lower()}s": int(m.group(1))})


def tidy_log(settings: Settings, target: Target, options: Options | None = None, *, now: datetime | None = None) -> LogTidied:
    """Checkpoint the current version, then delete expired log entries if no consumer needs them.

    delta-rs deletes log entries older than ``delta.logRetentionDuration`` before the
    latest checkpoint. A consumer that reads the feed from an old version needs that
    version's entry and those after it, so clean-up is skipped while the oldest version a
    consumer still loads is within ``margin`` of the log retention.
    """
    options = options or Options()
    table = open_table(target.uri, storage_options(settings))
    if table is None:
        return LogTidied(target.table, note="no table")
    version = table.version()
    h = horizon(settings, target, table, now=now)
    keep = log_retention(table)
    note = ""
    clean = True
    if h.unreadable:
        clean, note = False, f"log clean-up skipped: {h.unreadable}"
    elif keep is None:
        clean, note = False, "log clean-up skipped: delta.logRetentionDuration is not understood"
    elif h.oldest_unconsumed is not None and h.needed_age_hours + options.margin_hours >= keep.total_seconds() / 3600:
        clean, note = False, f"log clean-up skipped: a consumer still reads from version {h.oldest_unconsumed}"
    if options.dry_run:
        return LogTidied(target.table, version, clean, note)
    table.create_checkpoint()
    if clean:
        table.cleanup_metadata()
    return LogTidied(target.table, version, clean, note)


# ----------------------------------------------------------------------------- vacuum


@dataclass(frozen=True)
class Vacuumed:
    """What :func:`vacuum` did (or would do)."""

    table: str
    retention_hours: int | None = None
    oldest_unconsumed: int | None = None
    files: tuple[str, ...] = ()
    """The files deleted (or that would be)."""
    skipped: str | None = None
    change_data: tuple[str, ...] = ()
    """The change data files (``_change_data/``) deleted (or that would be)."""


def vacuum(settings: Settings, target: Target, options: Options | None = None, *, now: datetime | None = None) -> Vacuumed:
    """Delete removed files older than the retention that the table's consumers allow.

    The retention is :func:`retention_hours` of the consumers' :func:`horizon`; when their
    progress cannot be read, nothing is deleted. Raises :class:`CommitConflict` if the
    vacuum's own commit conflicts.
    """
    options = options or Options()
    table = open_table(target.uri, storage_options(settings))
    if table is None:
        return Vacuumed(target.table, skipped="no table")
    h = horizon(settings, target, table, now=now)
    if h.unreadable:
        return Vacuumed(target.table, oldest_unconsumed=h.oldest_unconsumed, skipped=h.unreadable)
    hours = retention_hours(h, options, has_consumers=bool(target.consumers))
    # our own bound replaces delta-rs' check against delta.deletedFileRetentionDuration
    files = table.vacuum(retention_hours=hours, dry_run=True, enforce_retention_duration=False)
    if files and not options.dry_run:
        table.update_incremental()  # vacuum commits too: start from the newest version
        with _conflicts(target):
            files = table.vacuum(retention_hours=hours, dry_run=False, enforce_retention_duration=False)
    store = open_store(target.uri, settings)
    change = expired_change_data(store, table, h, options.retention_hours, now=now or datetime.now(UTC))
    if change and not options.dry_run:
        store.delete(change)
    return Vacuumed(target.table, hours, h.oldest_unconsumed, tuple(sorted(files)), change_data=tuple(change))


def expired_change_data(store: ObjectStore, table: DeltaTable, h: Horizon, hours: int, *, now: datetime) -> list[str]:
    """The ``_change_data/`` files no reader needs: not written by a commit at or after the
    oldest version a consumer has not read, and older than the configured ``hours``.

    delta-rs' vacuum leaves change data files alone (they are never "removed" by a commit),
    so every merge and overwrite would add to ``_change_data/`` forever. A feed reader of
    version ``u`` and later needs the change data files of those commits only; the age
    bound spares a commit still being written and other readers of a recent feed.
    """
    listed = store.list("_change_data/")
    if not listed:
        return []
    current = table.version()
    keep_from = current + 1 if h.oldest_unconsumed is None else h.oldest_unconsumed
    needed: set[str] = set()
    for version in range(keep_from, current + 1):
        for line in store.get(f"_delta_log/{version:020d}.json").decode().splitlines():
            if '"cdc"' in line and (cdc := json.loads(line).get("cdc")):
                needed |= {cdc["path"], unquote(cdc["path"])}
    cutoff = now - timedelta(hours=hours)
    return [o.key for o in listed if o.key not in needed and o.last_modified < cutoff]


# ----------------------------------------------------------------------------- all steps


@dataclass(frozen=True)
class TableMaintenance:
    """The three steps' results for one table."""

    optimized: Optimized
    log: LogTidied
    vacuumed: Vacuumed
    dry_run: bool = False

    def row(self) -> dict[str, Any]:
        """One summary line: files and bytes before and after, files rewritten and vacuumed."""
        o, v = self.optimized, self.vacuumed
        missing = self.log.note == "no table"
        change = v.change_data and f"{len(v.change_data)} change data files {'would be ' if self.dry_run else ''}deleted"
        notes = ["no table yet"] if missing else [n for n in (self.log.note, v.skipped and f"vacuum skipped: {v.skipped}", change) if n]
        return {
            "table": o.table,
            "files_before": o.before.count,
            "files_after": o.after.count,
            "bytes_before": o.before.bytes,
            "bytes_after": o.after.bytes,
            "rewritten": len(o.files),
            "zorder": ", ".join(o.zorder),
            "checkpoint": self.log.checkpoint,
            "vacuumed": len(v.files),
            "change_data_deleted": len(v.change_data),
            "retention_hours": v.retention_hours,
            "oldest_unconsumed": v.oldest_unconsumed,
            "notes": "; ".join(notes),
        }


def maintain(settings: Settings, target: Target, options: Options | None = None, *, now: datetime | None = None) -> TableMaintenance:
    """Optimize, tidy the log of, and vacuum one table (no retry: see ``tasks.maintenance``)."""
    options = options or Options()
    optimized = optimize(settings, target, options)
    log = tidy_log(settings, target, options, now=now)
    vacuumed = vacuum(settings, target, options, now=now)
    return TableMaintenance(optimized, log, vacuumed, options.dry_run)
