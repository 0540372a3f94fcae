"""Files that cannot be read become one row with their real cause and their whole bytes."""

from __future__ import annotations

import base64
import gzip
import io
import zipfile
from datetime import UTC, datetime

import polars as pl
import pytest

from lakehouse.dev.shop import ORDERS
from lakehouse.layers.silver.transform import parse_records
from lakehouse.sources.files import UNREADABLE_LINE, parse_file

GOOD = b'{"order_id": "O1", "customer_id": "C1", "status": "paid", "ordered_at": "2026-01-01T00:01:00Z", "updated_at": "2026-01-01T00:02:00Z"}\n'


def _corrupt_deflate() -> bytes:
    good = gzip.compress(GOOD * 50)
    return good[:10] + b"\xff" * 40 + good[50:]


def _zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("a.jsonl", GOOD)
    return buf.getvalue()


CASES = [
    ("corrupt deflate stream", _corrupt_deflate(), "jsonl", "gzip", "unreadable: gzip: Error -3 while decompressing data: invalid", "(zlib.error)"),
    ("truncated gzip", gzip.compress(GOOD * 50)[:-20], "jsonl", "gzip", "unreadable: gzip: Compressed file ended", "(EOFError)"),
    ("not gzip at all", b"plain text, no gzip header\n", "jsonl", "gzip", "unreadable: gzip: Not a gzipped file", "(gzip.BadGzipFile)"),
    ("a zip named .gz", _zip(), "jsonl", "gzip", "unreadable: gzip: Not a gzipped file", "(gzip.BadGzipFile)"),
    ("not parquet", b"not parquet at all", "parquet", "none", "unreadable: parquet: ", ""),
    ("truncated parquet", b"PAR1\x00\x00PAR1", "parquet", "none", "unreadable: parquet: ", ""),
    ("gzipped garbage as csv", b"\x1f\x8b\x08\x00garbage", "csv", "gzip", "unreadable: gzip: ", ""),
]


@pytest.mark.parametrize(("case", "data", "format", "compression", "reason", "kind"), CASES, ids=[c[0] for c in CASES])
def test_an_unreadable_file_is_one_row_with_its_cause_and_its_bytes(
    case: str, data: bytes, format: str, compression: str, reason: str, kind: str
) -> None:
    out = parse_file(data, format=format, compression=compression, key="x/part-0")
    assert out.height == 1 and out.get_column("_line").to_list() == [UNREADABLE_LINE]
    head, _, body = out.get_column("_raw").to_list()[0].split("\n")
    assert head.startswith(reason) and head.endswith(kind), head
    assert base64.b64decode(body.removeprefix("base64:")) == data  # kept whole

    lines = out.with_columns(
        pl.lit("b").alias("_batch_id"), pl.lit("x/part-0").alias("_source_position"),
        pl.lit(datetime(2026, 1, 1, tzinfo=UTC)).alias("_landed_at"),
    )
    typed = parse_records(lines.lazy(), ORDERS).collect()
    assert typed.get_column("_reject_reason").to_list() == [head]  # the real cause, and only it


def test_a_good_gzip_still_reads_and_its_lines_start_at_one() -> None:
    out = parse_file(gzip.compress(GOOD * 3), key="x/part-0.jsonl.gz")
    assert out.get_column("_line").to_list() == [1, 2, 3]
