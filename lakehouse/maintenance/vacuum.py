"""Vacuum bounded by the slowest consumer: removed files are kept while a consumer may read them."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import unquote

from deltalake import DeltaTable

from lakehouse.commit import committed_version, open_table
from lakehouse.config import Settings
from lakehouse.maintenance.targets import Options, Target, conflicts
from lakehouse.storage import ObjectStore, open_store, storage_options


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
        with conflicts(target):
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
