"""The landing-files source: JSONL files that land under a prefix of an object store.

For a window ending at T it takes every file that landed before T and has not been
ingested yet (identified by key and version, so a corrected re-delivery under the same
key is ingested again). Landing time comes from the key (``.../YYYY/MM/DD/HH/MM/...``),
else from the object's last-modified time.
"""

from __future__ import annotations

import gzip
import io
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

import polars as pl

from lakehouse.storage import ObjectInfo, ObjectStore

_KEY_TIME = re.compile(r"(?:^|/)(\d{4})/(\d{2})/(\d{2})/(\d{2})/(\d{2})/")


@dataclass(frozen=True, order=True)
class LandedFile:
    """A landed file, ordered by landing time then key."""

    landed_at: datetime
    key: str
    version: str
    size: int


def landing_time(info: ObjectInfo, mode: str = "key") -> datetime:
    """The landing time encoded in the key, else the object's last-modified time.

    With ``mode="last_modified"`` the key is not looked at.
    """
    m = _KEY_TIME.search(info.key) if mode == "key" else None
    if m:
        y, mo, d, h, mi = (int(g) for g in m.groups())
        try:
            return datetime(y, mo, d, h, mi, tzinfo=UTC)
        except ValueError:
            pass  # not a date after all: fall back to last-modified
    return info.last_modified.astimezone(UTC)


def pending_files(
    store: ObjectStore,
    *,
    prefix: str,
    before: datetime,
    ingested: set[tuple[str, str]],
    time_from: str = "key",
) -> list[LandedFile]:
    """Files under ``prefix`` that landed before ``before`` and are not in ``ingested``.

    ``ingested`` holds ``(key, version)`` pairs already in bronze; ``time_from`` is the
    dataset's ``landing_time`` mode (``key`` or ``last_modified``, see :func:`landing_time`).
    """
    out = []
    for info in store.list(prefix.rstrip("/") + "/"):
        landed = landing_time(info, time_from)
        if landed < before and (info.key, info.etag) not in ingested:
            out.append(LandedFile(landed, info.key, info.etag, info.size))
    return sorted(out)


def _lines_of_text(text: str) -> pl.DataFrame:
    """One row per non-blank line, numbered from 1."""
    return (
        pl.DataFrame({"_raw": [text]})
        .select(pl.col("_raw").str.split("\n"))
        .explode("_raw")
        .with_row_index("_line", offset=1)
        .with_columns(pl.col("_raw").str.strip_chars_end("\r"), pl.col("_line").cast(pl.Int64))
        .filter(pl.col("_raw").str.strip_chars() != "")
    )


def _records_as_json(frame: pl.DataFrame, first_line: int) -> pl.DataFrame:
    """Rows of a tabular file as JSON object text, so every format types the same way."""
    temporal = [n for n, t in frame.schema.items() if t.is_temporal()]
    frame = frame.with_columns(
        [pl.col(n).dt.to_string("%Y-%m-%dT%H:%M:%S%.f%:z") if isinstance(frame.schema[n], pl.Datetime) and frame.schema[n].time_zone else pl.col(n).cast(pl.String) for n in temporal]  # type: ignore[union-attr]
    )
    return frame.select(pl.struct(pl.all()).struct.json_encode().alias("_raw")).with_row_index(
        "_line", offset=first_line
    ).with_columns(pl.col("_line").cast(pl.Int64))


def parse_file(data: bytes, *, format: str = "jsonl", compression: str = "none", key: str = "") -> pl.DataFrame:
    """The records of one file as ``_raw`` text and ``_line`` numbers.

    JSONL: one row per non-blank line, as received. CSV and Parquet: one JSON object per
    row (CSV values stay text, typed later like JSON fields). A file that cannot be read
    in its format becomes one row holding its text, so that silver quarantines it with a
    reason instead of bronze losing it.
    """
    if compression == "gzip" or key.endswith(".gz"):
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as exc:
            return pl.DataFrame({"_raw": [f"unreadable gzip file: {exc}"], "_line": [1]}, schema={"_raw": pl.String, "_line": pl.Int64})
    if format == "jsonl":
        return _lines_of_text(data.decode("utf-8-sig", errors="replace"))
    try:
        if format == "csv":
            frame = pl.read_csv(io.BytesIO(data), infer_schema=False, encoding="utf8-lossy")
            return _records_as_json(frame, first_line=2)
        if format == "parquet":
            return _records_as_json(pl.read_parquet(io.BytesIO(data)), first_line=1)
    except (pl.exceptions.PolarsError, OSError) as exc:
        text = data[:10000].decode("utf-8", errors="replace")
        return pl.DataFrame({"_raw": [f"unreadable {format} file ({exc}): {text}"], "_line": [1]}, schema={"_raw": pl.String, "_line": pl.Int64})
    raise ValueError(f"unknown format {format!r}")


def read_lines(
    store: ObjectStore, files: Iterable[LandedFile], *, format: str = "jsonl", compression: str = "none"
) -> pl.DataFrame:
    """The records of each file with their position.

    Columns: ``_raw``, ``_source_position`` (key), ``_source_version``, ``_line``
    (1-based), ``_landed_at``. Invalid UTF-8 is replaced (U+FFFD), a BOM is dropped.
    """
    frames = []
    for f in files:
        frame = parse_file(store.get(f.key), format=format, compression=compression, key=f.key).with_columns(
            pl.lit(f.key).alias("_source_position"),
            pl.lit(f.version).alias("_source_version"),
            pl.lit(f.landed_at).cast(pl.Datetime("us", "UTC")).alias("_landed_at"),
        )
        frames.append(frame)
    if not frames:
        return pl.DataFrame(schema=LINE_SCHEMA)
    return pl.concat(frames).select(list(LINE_SCHEMA))


LINE_SCHEMA = pl.Schema(
    {
        "_raw": pl.String(),
        "_source_position": pl.String(),
        "_source_version": pl.String(),
        "_line": pl.Int64(),
        "_landed_at": pl.Datetime("us", "UTC"),
    }
)
