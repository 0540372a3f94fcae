"""Prefect tasks for the layers: each reads plain values and calls one engine function.

Retrying is safe: every write re-reads its table's transaction version before writing
(``lakehouse.commit.write_once``), so a retried task never duplicates a batch.
"""

from __future__ import annotations

from prefect import get_run_logger, task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE

from lakehouse import bronze, gold, silver
from lakehouse.config import Settings
from lakehouse.errors import GateFailed
from lakehouse.gates import GateResult
from lakehouse.shop import DATASETS
from lakehouse.specs import TableSpec
from lakehouse.storage import open_store
from lakehouse.window import Window
from tasks.common import RETRY

_SPECS = {spec.name: spec for spec in DATASETS}


def spec_named(name: str) -> TableSpec:
    return _SPECS[name]


@task(name="bronze", timeout_seconds=600, cache_policy=NO_CACHE, **RETRY)
def ingest_bronze(settings: Settings, dataset: str, window: Window) -> bronze.BronzeResult:
    """Append the files of ``dataset`` that landed before the window's end to bronze."""
    spec = spec_named(dataset)
    result = bronze.ingest(settings, spec, window, landing=open_store(settings.landing_root, settings))
    get_run_logger().info(
        "%s: %s", result.table,
        "nothing new" if result.skipped else f"{len(result.files)} files, {result.rows} rows",
    )
    return result


def publish_gate(result: GateResult) -> None:
    """A table artifact of a gate's checks, visible on the run in the Prefect UI."""
    create_table_artifact(
        key=f"gate-{result.table.replace('.', '-').replace('_', '-')}",
        table=[
            {
                "check": c.name,
                "level": c.level,
                "outcome": "pass" if c.passed else "FAIL",
                "value": c.value,
                "threshold": c.threshold,
            }
            for c in result.checks
        ],
        description=f"{result.summary()} ({result.rows} rows)",
    )


def raise_if_blocked(results: list[GateResult]) -> None:
    failed = [r for r in results if not r.passed]
    if failed:
        raise GateFailed(
            "promotion blocked: " + "; ".join(r.summary() for r in failed),
            table=", ".join(r.table for r in failed),
            failed_checks=[c for r in failed for c in r.failed_checks()],
        )


@task(name="silver-gate", timeout_seconds=600, cache_policy=NO_CACHE, **RETRY)
def prepare_silver(settings: Settings, dataset: str) -> silver.SilverBatch | None:
    """Read and type silver's bronze increment and run its Soda gate."""
    batch = silver.prepare(settings, spec_named(dataset))
    if batch is not None:
        publish_gate(batch.gate)
    return batch


@task(name="silver-merge", timeout_seconds=600, cache_policy=NO_CACHE, **RETRY)
def commit_silver(settings: Settings, batch: silver.SilverBatch) -> silver.SilverResult:
    """Merge a gated batch into silver."""
    result = silver.commit(settings, batch)
    c = batch.counts
    get_run_logger().info(
        "%s: read %d = merged %d + rejected %d + duplicates %d (inserted %d, updated %d)",
        result.table, c.read, c.merged, c.rejected, c.duplicates, result.inserted, result.updated,
    )
    return result


@task(name="gold-gate", timeout_seconds=600, cache_policy=NO_CACHE, **RETRY)
def prepare_gold(settings: Settings) -> gold.GoldBatch | None:
    """Find the days silver changed, recompute them, and gate the silver slice they read."""
    batch = gold.prepare(settings)
    if batch is not None:
        for result in batch.gates:
            publish_gate(result)
    return batch


@task(name="gold-overwrite", timeout_seconds=600, cache_policy=NO_CACHE, **RETRY)
def commit_gold(settings: Settings, batch: gold.GoldBatch) -> gold.GoldResult:
    """Replace the touched days of the gold table."""
    result = gold.commit(settings, batch)
    get_run_logger().info("%s: %d days, %d rows", result.table, len(result.touched), result.rows)
    return result
