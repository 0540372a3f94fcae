"""The typed run summaries and their two renderings: the artifact's markdown and the terminal."""

from __future__ import annotations

import json
import pickle

from rich.console import Console

from flows.cli import show
from flows.summary import (
    BackfillSummary,
    BatchSummary,
    BronzeCounts,
    GoldChange,
    MaintenanceRow,
    MaintenanceSummary,
    ReplayCounts,
    ReplaySummary,
    TableCounts,
    markdown,
    window_line,
)


def counts(table: str, **given: object) -> TableCounts:
    values: dict = dict(read=0, merged=0, duplicates=0, conflicts=0, rejected=0, superseded=0, inserted=0, updated=0,
                        unchanged=0, files_added=0)
    return TableCounts(table=table, **(values | given))


BATCH = BatchSummary(
    pipeline="shop",
    window="2026-01-01 00:00–00:15",
    window_end="2026-01-01T00:15:00+00:00",
    files=7,
    bronze=[BronzeCounts(table="bronze.orders_raw", rows=43, commits=1, files_added=1)],
    tables=[
        counts("silver.orders", read=43, merged=40, duplicates=1, rejected=2, inserted=38, updated=2, files_added=1,
               reasons={"missing order_id": 2}, examples={"missing order_id": "`order_id` is null: {\"status\": …"},
               unknown_fields={"AMOUNT (looks like amount)": 3}, evolved={"coupon": "String"}),
        counts("silver.order_items", read=90, merged=88, conflicts=1, rejected=1, inserted=88, files_added=2,
               reasons={"unknown product_id": 1}),
    ],
    gold=[GoldChange(table="gold.daily_sales", partitions=["2025-12-31", "2026-01-01"], rows=12, files_added=2,
                     preview=[{"order_date": "2026-01-01", "revenue": 10.5}])],
    seconds=3.25,
    steps={"bronze": 1.0, "silver": 1.5, "gold": 0.75},
)


def terminal(summary: object) -> str:
    out = Console(record=True, width=160)
    show(summary, out)  # type: ignore[arg-type]
    return out.export_text()


def test_a_batch_renders_as_the_artifacts_markdown() -> None:
    assert markdown(BATCH) == "\n".join([
        "# shop 2026-01-01 00:00–00:15",
        "",
        "7 files landed; processed in 3.25 s (bronze 1 s, silver 1.5 s, gold 0.75 s).",
        "",
        "| table | read | merged | duplicates | conflicts | rejected | inserted | updated | files added |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        "| silver.orders | 43 | 40 | 1 | 0 | 2 | 38 | 2 | 1 |",
        "| silver.order_items | 90 | 88 | 0 | 1 | 1 | 88 | 0 | 2 |",
        "",
        "Quarantined from silver.orders:",
        "",
        "- 2 × missing order_id: e.g. `'order_id' is null: {\"status\": …`",
        "",
        "Quarantined from silver.order_items:",
        "",
        "- 1 × unknown product_id",
        "",
        "Members that are not columns of silver.orders (records carrying each):",
        "",
        "- 3 × `AMOUNT (looks like amount)`",
        "",
        "Columns added to silver.orders by this batch (unknown_fields: evolve): `coupon` String",
        "",
        "gold.daily_sales: recomputed 2 partitions (2025-12-31, 2026-01-01), 12 rows, 2 files added.",
    ])


def test_a_batch_renders_in_the_terminal() -> None:
    text = terminal(BATCH)
    assert "window 2026-01-01 00:00–00:15: 7 files in 3.2 s (bronze 1.0 s, silver 1.5 s, gold 0.8 s)" in text
    rows = [" ".join(line.replace("│", " ").replace("┃", " ").split()) for line in text.splitlines()]
    assert "table read merged duplicates conflicts rejected inserted updated files added" in rows
    assert "silver.orders 43 40 1 0 2 38 2 1" in rows
    assert "silver.order_items 90 88 0 1 1 88 0 2" in rows
    assert "  quarantined from silver.orders: 2 × missing order_id" in text.splitlines()
    assert "  quarantined from silver.order_items: 1 × unknown product_id" in text.splitlines()
    assert "  gold.daily_sales: recomputed 2 partition(s) 2025-12-31, 2026-01-01, 2 file(s) added" in text.splitlines()


def test_a_skipped_run_says_which_run_supersedes_it() -> None:
    skipped = BatchSummary(pipeline="shop", window="2026-01-01 00:00–00:15", window_end="2026-01-01T00:15:00+00:00",
                           superseded_by="shop 2026-01-01 00:45–01:00")
    assert markdown(skipped) == ("# shop 2026-01-01 00:00–00:15\n\nlate run skipped: shop 2026-01-01 00:45–01:00 is also "
                                 "due and processes every file landed before its window's end.")
    assert skipped.tables == [] and skipped.seconds is None


def test_a_backfill_renders_one_row_and_one_line_per_window() -> None:
    stopped = BackfillSummary(pipeline="shop", span="2026-01-01 00:00 → 00:30", planned=2, windows=[BATCH],
                              stopped_at="2026-01-01 00:15–00:30", reason="blocked: missing(order_id)")
    assert window_line(BATCH) == ("2026-01-01 00:00–00:15: 7 files, read 133, merged 128, rejected 3, duplicates 1; "
                                  "gold 2 partition(s)")
    assert markdown(stopped).splitlines()[2:] == [
        "1 of 2 windows done.", "",
        "| window | files | read | merged | rejected | duplicates | gold partitions |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
        "| 2026-01-01 00:00–00:15 | 7 | 133 | 128 | 3 | 1 | 2 |", "",
        "**Stopped at 2026-01-01 00:15–00:30**: blocked: missing(order_id)",
    ]


def test_a_replay_and_a_maintenance_render_in_both_places() -> None:
    replay = ReplaySummary(
        pipeline="shop", replayed=[ReplayCounts(table="silver.order_items", candidates=3, replayed=1,
                                                still_failing={"unknown product_id": 2}, bronze_version=5)],
        tables=[counts("silver.order_items", read=1, merged=1, inserted=1)], gold=BATCH.gold,
    )
    assert "| silver.order_items | 3 | 1 | 2 × unknown product_id |" in markdown(replay)
    assert "gold.daily_sales: recomputed 2 partitions, 12 rows" in markdown(replay)
    assert terminal(replay).splitlines() == [
        "silver.order_items: 1 of 3 quarantined rows replayed; still failing: 2 × unknown product_id",
        "  silver.order_items: merged 1 (inserted 1, updated 0), rejected 0",
        "  gold.daily_sales: recomputed 2 partition(s)",
    ]
    row = MaintenanceRow(table="bronze.orders_raw", files_before=21, files_after=1, bytes_before=2_000_000,
                         bytes_after=1_500_000, rewritten=21, zorder="", checkpoint=22, vacuumed=0, change_data_deleted=0,
                         retention_hours=170, oldest_unconsumed=20, notes="vacuum skipped: dry run")
    tidy = MaintenanceSummary(pipeline="shop", dry_run=True, seconds=2.5, tables=[row],
                              rewrite={"bronze.orders_raw": [f"part-{i}.parquet" for i in range(21)]})
    text = markdown(tidy)
    assert text.startswith("# shop: maintenance (dry run: nothing changed)\n\n1 tables in 2.5 s")
    assert "| bronze.orders_raw | 21 | 1 | 2000000 | 1500000 | 21 | – | 0 | 170 | vacuum skipped: dry run |" in text
    assert "**bronze.orders_raw**, files would be rewritten: `part-0.parquet`" in text and text.endswith("… and 1 more")
    shown = terminal(tidy)
    assert "21 → 1" in shown and "2.00 → 1.50" in shown
    assert "  bronze.orders_raw would rewrite 21 files: part-0.parquet, part-1.parquet, part-2.parquet, part-3.parquet, " \
           "part-4.parquet …" in shown


def test_summaries_pickle_and_turn_into_plain_dicts() -> None:
    assert pickle.loads(pickle.dumps(BATCH)) == BATCH  # as a worker that persists results needs
    plain = BATCH.to_dict()
    assert plain["tables"][0]["reasons"] == {"missing order_id": 2} and plain["gold"][0]["partitions"][0] == "2025-12-31"
    assert json.loads(json.dumps(plain)) == plain
