"""Maintenance: compaction, z-order, log checkpoints and clean-up, and a vacuum bounded by consumers.

Micro-batches write a few small files per table per window; left alone, reads slow down with
history (STACK.md: delta-rs #2781, #3565). Per table, :func:`maintain` runs three steps, each
of which is its own function so that an orchestrator can retry one step on a conflict:

1. :func:`optimize` bin-packs small files into files of about the table's
   ``delta.targetFileSize`` (a silver table's declared ``target_file_size``), else
   :data:`TARGET_FILE_SIZE` (``optimize.compact``), or, where the declaration names ``zorder:`` columns, rewrites the
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

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from lakehouse.config import Settings
from lakehouse.maintenance.log import LogTidied, log_retention, tidy_log
from lakehouse.maintenance.optimize import Files, Optimized, optimize
from lakehouse.maintenance.targets import (
    DEFAULT_LOG_RETENTION,
    DEFAULT_MARGIN_HOURS,
    DEFAULT_RETENTION_HOURS,
    TARGET_FILE_SIZE,
    Consumer,
    Options,
    Target,
    conflicts,
    select,
    targets,
)
from lakehouse.maintenance.vacuum import (
    Horizon,
    Vacuumed,
    expired_change_data,
    horizon,
    retention_hours,
    vacuum,
)

__all__ = [
    "DEFAULT_LOG_RETENTION", "DEFAULT_MARGIN_HOURS", "DEFAULT_RETENTION_HOURS", "TARGET_FILE_SIZE", "Consumer",
    "Files", "Horizon", "LogTidied", "Optimized", "Options", "TableMaintenance", "Target", "Vacuumed",
    "conflicts", "expired_change_data", "horizon", "log_retention", "maintain", "optimize", "retention_hours", "select",
    "targets", "tidy_log", "vacuum",
]


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
        change = f"{len(v.change_data)} change data files {'would be ' if self.dry_run else ''}deleted" if v.change_data else ""
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
