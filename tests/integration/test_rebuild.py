"""``lakehouse rebuild [--from bronze]``: silver, quarantine and gold rebuilt from bronze alone equal
the tables built incrementally, and the next window runs as usual (a rebuild interrupted and run again:
tests/unit/test_rebuild.py)."""

from __future__ import annotations

import os

import pytest
from deltalake import DeltaTable
from polars.testing import assert_frame_equal
from prefect.artifacts import Artifact
from typer.testing import CliRunner

from flows.cli import app
from lakehouse.commit import silver_app
from lakehouse.config import Settings
from lakehouse.declaration import load
from lakehouse.storage import storage_options
from tests.integration.conftest import WINDOWS, InOrder
from tests.integration.helpers import contents, land, run, versions

pytestmark = pytest.mark.usefixtures("prefect_api")

REBUILT = ("silver.", "quarantine.", "gold.")


def _rebuilt(frames: dict) -> dict:
    """The tables a rebuild writes (``contents`` drops ``_ingested_at``: bronze's landing time, copied into
    silver's lineage, is the same in both since bronze is not rewritten, but it is dropped as everywhere)."""
    return {name: frame for name, frame in frames.items() if name.startswith(REBUILT)}


def _invoke(monkeypatch: pytest.MonkeyPatch, *args: str):
    monkeypatch.setenv("LAKEHOUSE_CONFIG", os.environ["LAKEHOUSE_CONFIG"])  # restored after the test
    return CliRunner().invoke(app, ["rebuild", *args])


@pytest.mark.slow
def test_a_rebuild_from_bronze_equals_the_incremental_tables_and_the_next_window_still_runs(
    in_order: InOrder, monkeypatch: pytest.MonkeyPatch
) -> None:
    in_order.use(WINDOWS, monkeypatch)  # the reference: land(4), windows 1..4 in order
    reference = _rebuilt(contents())
    assert {"silver.orders", "silver.order_items", "quarantine.order_items", "gold.daily_sales"} <= set(reference)
    assert any(name.startswith("quarantine.") and not frame.is_empty() for name, frame in reference.items())
    models = {f"gold.{m.spec.name}" for m in load().pipeline(None).models}
    assert models <= set(reference), models - set(reference)  # every gold model is compared

    in_order.clone(WINDOWS, monkeypatch, landed=WINDOWS)
    before = versions()
    result = _invoke(monkeypatch, "--yes")
    assert result.exit_code == 0, result.output
    assert "rebuild silver and gold from bronze" in result.output
    assert "round 1: " in result.output and "silver.orders read " in result.output, result.output
    assert "in the 4 batches of its original rounds" in result.output  # one per window, replayed in order
    after = versions()
    for name in reference:
        assert after[name] is not None and before[name] is not None and after[name] > before[name], name
    for name, version in before.items():
        if name.startswith("bronze."):
            assert after[name] == version, f"{name} was written"
    rebuilt = _rebuilt(contents())
    assert set(rebuilt) == set(reference)
    # every table at once first, so that a failure names them all (rows rebuilt vs incremental)
    differ = {n: (rebuilt[n].height, f.height) for n, f in reference.items() if not rebuilt[n].equals(f)}
    assert not differ, differ
    for name, frame in reference.items():
        assert_frame_equal(rebuilt[name], frame, check_row_order=True)
    progress = Artifact.get("rebuild-progress")
    assert progress is not None and progress.data == 100.0
    summary = Artifact.get("rebuild-summary")
    assert summary is not None and "rebuild from bronze" in str(summary.data)

    settings = Settings()
    orders = DeltaTable(settings.table_uri("silver", "orders"), storage_options=storage_options(settings))
    consumed, version = orders.transaction_version(silver_app("orders", "orders_raw")), orders.version()
    land(1, first=WINDOWS + 1)
    state = run(WINDOWS + 1)  # the next window after a rebuild commits as usual
    assert state.is_completed(), state.message
    assert state.result().tables and state.result().tables[0].merged > 0
    orders.update_incremental()
    assert orders.version() > version
    assert (orders.transaction_version(silver_app("orders", "orders_raw")) or 0) > (consumed or 0)


def test_rebuild_from_anything_but_bronze_is_one_line_exit_2(in_order: InOrder, monkeypatch: pytest.MonkeyPatch) -> None:
    in_order.use(WINDOWS, monkeypatch)
    result = _invoke(monkeypatch, "--from", "silver", "--yes")
    assert result.exit_code == 2
    assert result.output.strip() == "--from silver: only --from bronze is supported (bronze is the replayable log)"


def test_answering_no_changes_nothing(in_order: InOrder, monkeypatch: pytest.MonkeyPatch) -> None:
    in_order.clone(WINDOWS, monkeypatch, landed=WINDOWS)
    before = versions()
    monkeypatch.setenv("LAKEHOUSE_CONFIG", os.environ["LAKEHOUSE_CONFIG"])
    result = CliRunner().invoke(app, ["rebuild"], input="n\n")
    assert result.exit_code == 1, result.output
    assert "silver.orders: empty" in result.output and "nothing changed" in result.output
    assert versions() == before
