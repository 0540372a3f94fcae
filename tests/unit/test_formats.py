from __future__ import annotations

import gzip
import io
from datetime import UTC, datetime

import polars as pl

from lakehouse.dev.shop import ORDERS
from lakehouse.layers.silver.transform import parse_records
from lakehouse.sources.files import parse_file

CSV = b"order_id,customer_id,status,ordered_at,updated_at\nO1,C1,paid,2026-01-01T00:01:00Z,2026-01-01T00:02:00Z\nO2,C2,lost,2026-01-01T00:01:00Z,2026-01-01T00:02:00Z\n"


def typed(frame: pl.DataFrame) -> pl.DataFrame:
    lines = frame.with_columns(
        pl.lit("b").alias("_batch_id"), pl.lit("k").alias("_source_position"),
        pl.lit(datetime(2026, 1, 1, tzinfo=UTC)).alias("_landed_at"),
    )
    return parse_records(lines.lazy(), ORDERS).collect()


def test_csv_rows_type_like_json_and_keep_their_line_numbers() -> None:
    out = typed(parse_file(CSV, format="csv"))
    assert out.get_column("_line").to_list() == [2, 3]
    assert out.get_column("_reject_reason").to_list()[0] is None
    assert "invalid status" in out.get_column("_reject_reason").to_list()[1]


def test_parquet_and_gzip() -> None:
    frame = pl.DataFrame({"order_id": ["O1"], "customer_id": ["C1"], "status": ["paid"],
                          "ordered_at": [datetime(2026, 1, 1, 0, 1, tzinfo=UTC)],
                          "updated_at": [datetime(2026, 1, 1, 0, 2, tzinfo=UTC)]})
    buf = io.BytesIO()
    frame.write_parquet(buf)
    out = typed(parse_file(buf.getvalue(), format="parquet"))
    assert out.get_column("_reject_reason").to_list() == [None]
    assert out.get_column("updated_at").to_list() == [datetime(2026, 1, 1, 0, 2, tzinfo=UTC)]
    zipped = typed(parse_file(gzip.compress(CSV), format="csv", compression="gzip"))
    assert zipped.height == 2


def test_unreadable_files_become_one_rejected_row_instead_of_vanishing() -> None:
    out = typed(parse_file(b"not parquet at all", format="parquet"))
    assert out.height == 1
    assert out.get_column("_reject_reason").to_list()[0].startswith("unreadable: parquet: ")
    assert out.get_column("_raw").to_list()[0].startswith("unreadable: parquet: ")
    assert typed(parse_file(b"\x1f\x8bjunk", format="jsonl", compression="gzip")).height == 1


def test_one_bad_csv_row_is_its_own_rejected_record_and_the_others_are_promoted() -> None:
    good = "O{0},C1,paid,2026-01-01T00:01:00Z,2026-01-01T00:02:00Z"
    data = "\n".join([
        "order_id,customer_id,status,ordered_at,updated_at",
        good.format(1),
        "O2,C1,paid,2026-01-01T00:01:00Z",                       # a field short
        'O3,"C1, the ""first""",paid,2026-01-01T00:01:00Z,2026-01-01T00:02:00Z',
        'O4,C"1,paid,2026-01-01T00:01:00Z,2026-01-01T00:02:00Z',  # a quote inside an unquoted field
        '"O5","multi',
        'line",paid,2026-01-01T00:01:00Z,2026-01-01T00:02:00Z',
        good.format(6),
    ]).encode()
    out = typed(parse_file(data, format="csv"))
    assert out.get_column("_line").to_list() == [2, 3, 4, 5, 6, 8]
    assert out.get_column("order_id").to_list() == ["O1", None, "O3", None, "O5", "O6"]
    assert out.get_column("customer_id").to_list()[2] == 'C1, the "first"'
    assert out.get_column("_reject_reason").to_list() == [
        None, "malformed CSV row: 4 fields where the header has 5", None,
        "malformed CSV row: bad quoting (a quote inside an unquoted field, or one never closed)", None, None,
    ]
    assert out.get_column("_raw").to_list()[1] == "O2,C1,paid,2026-01-01T00:01:00Z"  # its own line, as received


def test_a_csv_header_naming_a_column_twice_rejects_every_row_of_the_file() -> None:
    data = b"order_id,customer_id,status,status,ordered_at,updated_at\nO1,C1,paid,lost,2026-01-01T00:01:00Z,2026-01-01T00:02:00Z\n"
    out = typed(parse_file(data, format="csv"))
    assert out.get_column("_reject_reason").to_list() == ["malformed CSV file: the header names status more than once"]
    assert out.get_column("_raw").to_list() == ["O1,C1,paid,lost,2026-01-01T00:01:00Z,2026-01-01T00:02:00Z"]
