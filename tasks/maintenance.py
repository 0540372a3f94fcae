"""Prefect tasks for maintenance: one engine step each, retried on a conflicting commit.

A step that conflicts with a concurrent writer (``CommitConflict``, transient) is retried
with the shared backoff: each step reloads the table and works out again what to do, so a
retry after a conflict neither repeats nor loses anything.
"""

from __future__ import annotations

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from lakehouse import maintenance
from lakehouse.config import Settings
from tasks.common import RETRY, engine_errors


@task(name="optimize", task_run_name="optimize {target.table}", timeout_seconds=1800, cache_policy=NO_CACHE, **RETRY)
@engine_errors
def optimize_table(settings: Settings, target: maintenance.Target, options: maintenance.Options) -> maintenance.Optimized:
    """Compact (or z-order) the table's small files."""
    result = maintenance.optimize(settings, target, options)
    get_run_logger().info(
        "%s: %d files%s, %d → %d files", result.table, len(result.files),
        " would be rewritten" if options.dry_run else " rewritten", result.before.count, result.after.count,
    )
    return result


@task(name="tidy-log", task_run_name="log {target.table}", timeout_seconds=600, cache_policy=NO_CACHE, **RETRY)
@engine_errors
def tidy_table_log(settings: Settings, target: maintenance.Target, options: maintenance.Options) -> maintenance.LogTidied:
    """Checkpoint the table's log and delete expired entries no consumer needs."""
    result = maintenance.tidy_log(settings, target, options)
    get_run_logger().info("%s: checkpoint at version %s%s", result.table, result.checkpoint, f"; {result.note}" if result.note else "")
    return result


@task(name="vacuum", task_run_name="vacuum {target.table}", timeout_seconds=1800, cache_policy=NO_CACHE, **RETRY)
@engine_errors
def vacuum_table(settings: Settings, target: maintenance.Target, options: maintenance.Options) -> maintenance.Vacuumed:
    """Delete removed files older than the retention the table's consumers allow."""
    result = maintenance.vacuum(settings, target, options)
    get_run_logger().info(
        "%s: %s", result.table,
        f"vacuum skipped: {result.skipped}" if result.skipped
        else f"{len(result.files)} files {'would be ' if options.dry_run else ''}deleted (retention {result.retention_hours} h)",
    )
    return result
