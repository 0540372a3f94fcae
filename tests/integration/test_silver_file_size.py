"""A silver merge's rewrite stays bounded as the table grows (issue 10, item 3).

delta-rs has no deletion vectors: a merge rewrites every file that may hold one of its
batch's keys. With time-ordered keys, the file holding the newest keys is rewritten by every
window, and at delta-rs' default target of 100 MiB it keeps growing, so the rows a merge
copies grew by a window's worth every window (the growing-history benchmark's miss). A
silver table is made with its declared ``target_file_size`` (``delta.targetFileSize``), so
its files roll at that size and a merge copies a bounded number of rows. Windows of the
benchmark's order lines (10 % updates of the previous three windows) run through the
engine (``lakehouse.engine.run_window``, no Prefect) on local disk.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from deltalake import DeltaTable

from bench import data
from bench.engine import PIPELINE_FILE
from lakehouse.config import Settings
from lakehouse.declaration import parse
from lakehouse.engine import run_window
from lakehouse.storage import open_store
from lakehouse.window import Window

pytestmark = [pytest.mark.slow, pytest.mark.in_order_shard]  # the shards' balance (tests/shards.py)

LINES = 4_000
"""Order lines per window: about 70 kB of Parquet, so a 64 KiB file holds about a window."""
WINDOWS = 10
FILE_SIZE = 64 * 1024


def test_merges_copy_a_bounded_number_of_rows_as_silver_grows(tmp_path: Path) -> None:
    text = PIPELINE_FILE.read_text().replace(
        "key: [order_id, line_no]", f"key: [order_id, line_no]\n        target_file_size: {FILE_SIZE}", 1
    )
    assert f"target_file_size: {FILE_SIZE}" in text
    pipeline = parse(text, path="<bench pipeline, small files>").pipeline("bench")
    settings = Settings(warehouse=str(tmp_path / "warehouse"), landing=str(tmp_path / "landing"))
    shape = data.Shape(lines=LINES, seed=3, lines_per_file=LINES)
    landing = open_store(settings.landing_root, settings)
    for w in range(WINDOWS):
        data.land_window(shape, landing, w)
        run_window(settings, pipeline, Window(shape.window_start(w), shape.window_end(w)))

    silver = DeltaTable(settings.table_uri("silver", "order_lines"))
    assert silver.metadata().configuration.get("delta.targetFileSize") == str(FILE_SIZE)
    merges = [c for c in silver.history() if c.get("operation") == "MERGE"]
    copied = [int(c["operationMetrics"]["num_target_rows_copied"]) for c in merges]  # newest first
    assert len(copied) == WINDOWS, copied  # the first into the empty table
    # every window appended ~3,600 new lines; at the default target the last merges copied
    # the whole table (32k rows by the 10th); at 64 KiB they copy the few files the batch's keys
    # can be in: the last three windows' lines, and the files at the edges of that range
    assert max(copied[:4]) <= 6 * LINES, copied
    assert len(silver.file_uris()) >= WINDOWS // 4, silver.file_uris()
    # the merges kept every line: silver holds each distinct key once
    rows = silver.to_pyarrow_table(columns=["order_id", "line_no"]).num_rows
    assert rows == sum(shape.new_lines(w) for w in range(WINDOWS)), rows
