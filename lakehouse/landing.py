"""The landing-files source: JSONL files that land under a prefix of an object store.

For a window ending at T it takes every file that landed before T and has not been
ingested yet (identified by key and version, so a corrected re-delivery under the same
key is ingested again). Landing time comes from the key (``.../YYYY/MM/DD/HH/MM/...``),
else from the object's last-modified time.
"""

from __future__ import annotations

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


def landing_time(info: ObjectInfo) -> datetime:
    """The landing time encoded in the key, else the object's last-modified time."""
    m = _KEY_TIME.search(info.key)
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
) -> list[LandedFile]:
    """Files under ``prefix`` that landed before ``before`` and are not in ``ingested``.

    ``ingested`` holds ``(key, version)`` pairs already in bronze.
    """
    out = []
    for info in store.list(prefix.rstrip("/") + "/"):
        landed = landing_time(info)
        if landed < before and (info.key, info.etag) not in ingested:
            out.append(LandedFile(landed, info.key, info.etag, info.size))
    return sorted(out)


def read_lines(store: ObjectStore, files: Iterable[LandedFile]) -> pl.DataFrame:
    """One row per non-blank line of each file: ``_raw`` text plus its position.

    Columns: ``_raw``, ``_source_position`` (key), ``_source_version``, ``_line``
    (1-based), ``_landed_at``. Invalid UTF-8 is replaced (U+FFFD), a BOM is dropped.
    """
    frames = []
    for f in files:
        text = store.get(f.key).decode("utf-8-sig", errors="replace")
        frame = (
            pl.DataFrame({"_raw": [text]})
            .select(pl.col("_raw").str.split("\n"))
            .explode("_raw")
            .with_row_index("_line", offset=1)
            .with_columns(
                pl.col("_raw").str.strip_chars_end("\r"),
                pl.col("_line").cast(pl.Int64),
                pl.lit(f.key).alias("_source_position"),
                pl.lit(f.version).alias("_source_version"),
                pl.lit(f.landed_at).cast(pl.Datetime("us", "UTC")).alias("_landed_at"),
            )
            .filter(pl.col("_raw").str.strip_chars() != "")
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
