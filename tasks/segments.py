"""The task of the monthly customer segments (:mod:`lakehouse.segments`)."""

from __future__ import annotations

from datetime import date

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from lakehouse import segments
from lakehouse.config import Settings
from tasks.common import RETRY, engine_errors


@task(name="customer-segments", task_run_name="segments {month}", timeout_seconds=1800, cache_policy=NO_CACHE, **RETRY)
@engine_errors
def segment_customers(settings: Settings, month: date) -> segments.MonthSegments:
    """Compute a month's RFM segments and replace its partition (a retry replaces it again: the same rows)."""
    result = segments.write(settings, month)
    get_run_logger().info("gold.%s %s: %d customers %s", segments.TABLE, f"{month:%Y-%m}", result.customers, result.segments)
    return result
