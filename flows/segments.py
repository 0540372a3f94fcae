"""The monthly customer segments flow (``lakehouse segments``, deployment ``shop-customer-segments``)."""

from __future__ import annotations

from datetime import UTC, datetime

from prefect import flow
from prefect.artifacts import create_markdown_artifact
from prefect.runtime import flow_run

from lakehouse import segments
from lakehouse.config import Settings
from tasks.segments import segment_customers


def _run_name() -> str:
    return f"customer segments {flow_run.parameters.get('month') or '(last month)'}"


def markdown(result: segments.MonthSegments) -> str:
    """The ``customer-segments`` artifact: customers per segment, and what was read."""
    if not result.customers:
        return f"# Customer segments {result.month:%Y-%m}\n\nNo customer ordered in the {segments.LOOKBACK_MONTHS} months up to {result.month:%B %Y}: nothing written.\n"
    lines = [
        f"# Customer segments {result.month:%Y-%m}",
        "",
        f"{result.customers:,} customers scored (orders of the {segments.LOOKBACK_MONTHS} months up to {result.month:%B %Y}); "
        f"`gold.{segments.TABLE}` version {result.version}, from "
        + ", ".join(f"`{k}` v{v}" for k, v in result.consumed.items()),
        "",
        "| segment | customers | share |",
        "|---|---:|---:|",
        *(f"| {k} | {v:,} | {v / result.customers:.1%} |" for k, v in result.segments.items()),
    ]
    return "\n".join(lines) + "\n"


@flow(name="customer-segments", flow_run_name=_run_name, log_prints=False)
def customer_segments(month: str | None = None) -> segments.MonthSegments:
    """RFM segments of ``month`` (``YYYY-MM``; default: the month before the run's) into
    ``gold.customer_segments``, replacing that month's partition. Publishes ``customer-segments``."""
    first = segments.parse_month(month) if month else segments.previous_month(datetime.now(UTC).date())
    result = segment_customers(Settings(), first)
    create_markdown_artifact(key="customer-segments", markdown=markdown(result), description=f"customer segments {first:%Y-%m}")
    return result
