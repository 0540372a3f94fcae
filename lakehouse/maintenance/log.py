"""The Delta log: checkpoints, and expired log entries cleaned up past the slowest consumer."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from deltalake import DeltaTable

from lakehouse.commit import open_table
from lakehouse.config import Settings
from lakehouse.maintenance.targets import DEFAULT_LOG_RETENTION, Options, Target
from lakehouse.maintenance.vacuum import horizon
from lakehouse.storage import storage_options
from lakehouse.window import parse_delta_interval


@dataclass(frozen=True)
class LogTidied:
    """What :func:`tidy_log` did (or would do)."""

    table: str
    checkpoint: int | None = None
    """The version checkpointed (or that would be)."""
    cleaned: bool = False
    """Whether expired log entries were deleted (or would be)."""
    note: str = ""


def log_retention(table: DeltaTable) -> timedelta | None:
    """The table's ``delta.logRetentionDuration`` (30 days if unset; None if unreadable)."""
    text = table.metadata().configuration.get("delta.logRetentionDuration")
    if text is None:
        return DEFAULT_LOG_RETENTION
    return parse_delta_interval(text)


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
