"""The landing-files source: JSONL files that land under a prefix of an object store.

For a window ending at T it takes every file that landed before T and has not been
ingested yet (identified by key and version, so a corrected re-delivery under the same
key is ingested again). Landing time comes from the key (``.../YYYY/MM/DD/HH/MM/...``),
else from the object's last-modified time.
"""

from __future__ import annotations

import base64
import csv
import gzip
import hashlib
import io
import re
import zlib
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import polars as pl

from lakehouse.sources import records
from lakehouse.specs import Compression, FileFormat, LandingTime
from lakehouse.storage import ObjectInfo, ObjectStore, UnsafeKey

_KEY_TIME = re.compile(r"(?:^|/)(\d{4})/(\d{2})/(\d{2})/(\d{2})/(\d{2})/")


@dataclass(frozen=True, order=True)
class LandedFile:
    """A landed file, ordered by landing time then key."""

    landed_at: datetime
    key: str
    version: str
    size: int
    modified: datetime | None = None
    """The object's last-modified time (when it was uploaded)."""


def landing_time(info: ObjectInfo, mode: LandingTime = "key") -> datetime:
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


_TIME_FIRST = re.compile(r"^\d{4}/\d{2}/\d{2}/\d{2}/\d{2}/")


Seen = tuple[str, str, datetime, datetime]
"""A file the cursor remembers: key, version, landing time, last-modified time."""


@dataclass(frozen=True)
class FileCursor:
    """Where a landing-files source stands: stored in every bronze commit's metadata.

    ``watermark`` is the newest landing time ingested and ``uploaded`` the newest
    last-modified time the listing showed. A file is pending when the cursor has not seen
    its key and version, and it either landed within ``lookback`` of the watermark or was
    uploaded since the last listing (a late file, or a re-delivery under an old key, is
    never dropped). ``recent`` remembers the files that could still match either rule, so
    what the cursor holds, and what a window compares, does not grow with history.
    """

    watermark: datetime | None = None
    recent: frozenset[Seen] = frozenset()
    time_ordered: bool = False
    """Keys are ``<prefix>/YYYY/MM/DD/HH/MM/...`` (the listing may start at the horizon)."""
    uploaded: datetime | None = None

    def horizon(self, lookback: timedelta) -> datetime | None:
        """The watermark less ``lookback``: a file that landed before it is late (None before any file)."""
        return None if self.watermark is None else self.watermark - lookback

    def seen(self) -> set[tuple[str, str]]:
        """The (key, version) pairs of the files the cursor remembers (``recent``)."""
        return {(key, version) for key, version, _, _ in self.recent}

    def advance(
        self, files: Iterable[LandedFile], *, prefix: str, lookback: timedelta, uploaded: datetime | None = None
    ) -> FileCursor:
        """The cursor after ``files`` were ingested from a listing whose newest upload was ``uploaded``."""
        files = list(files)
        marks = [f.landed_at for f in files] + ([self.watermark] if self.watermark else [])
        watermark = max(marks) if marks else None
        uploads = [u for u in (self.uploaded, uploaded) if u is not None]
        newest = max(uploads) if uploads else None
        horizon = watermark - lookback if watermark else None
        epoch = datetime(1970, 1, 1, tzinfo=UTC)
        recent = {*self.recent, *((f.key, f.version, f.landed_at, f.modified or epoch) for f in files)}
        kept = frozenset(
            r for r in recent
            if horizon is None or r[2] >= horizon or (newest is not None and r[3] >= newest)
        )
        base = prefix.rstrip("/") + "/"
        ordered = bool(kept) and all(_TIME_FIRST.match(key[len(base):]) for key, *_ in kept)
        return FileCursor(watermark, kept, ordered, newest)

    def to_json(self) -> dict[str, object]:
        """The cursor as JSON values, to commit with the batch."""
        return {
            "watermark": self.watermark.isoformat() if self.watermark else None,
            "uploaded": self.uploaded.isoformat() if self.uploaded else None,
            "time_ordered": self.time_ordered,
            "recent": sorted([k, v, landed.isoformat(), modified.isoformat()] for k, v, landed, modified in self.recent),
        }

    @classmethod
    def from_json(cls, data: dict[str, object]) -> FileCursor:
        """The cursor that :meth:`to_json` wrote."""
        def when(value: object) -> datetime | None:
            return datetime.fromisoformat(str(value)) if value else None

        recent = data.get("recent") or []
        assert isinstance(recent, list)
        epoch = datetime(1970, 1, 1, tzinfo=UTC)
        return cls(
            when(data.get("watermark")),
            frozenset(
                (str(r[0]), str(r[1]), datetime.fromisoformat(str(r[2])), when(r[3] if len(r) > 3 else None) or epoch)
                for r in recent
            ),
            bool(data.get("time_ordered")),
            when(data.get("uploaded")),
        )


@dataclass(frozen=True)
class Pending:
    """What a listing found: the pending files, and the newest upload it showed."""

    files: list[LandedFile]
    uploaded: datetime | None


def pending_files(
    store: ObjectStore,
    *,
    prefix: str,
    before: datetime,
    cursor: FileCursor,
    lookback: timedelta,
    time_from: LandingTime = "key",
    from_horizon: bool = False,
) -> Pending:
    """Files under ``prefix`` that landed before ``before`` and that ``cursor`` does not rule out.

    A file that landed before the cursor's horizon (``watermark - lookback``) is pending
    only if it was uploaded since the cursor's last listing. With ``from_horizon`` (and
    time-ordered keys) the listing starts at the horizon (S3 ``StartAfter``) instead of at
    the beginning of the prefix: cheaper on a long history, but a file uploaded late under
    a key older than the horizon is then not seen. ``time_from`` is the dataset's
    ``landing_time`` mode (``key`` or ``last_modified``, see :func:`landing_time`).
    """
    base = prefix.rstrip("/") + "/"
    horizon = cursor.horizon(lookback)
    start_after = None
    if from_horizon and horizon is not None and cursor.time_ordered and time_from == "key":
        start_after = base + (horizon - timedelta(minutes=1)).strftime("%Y/%m/%d/%H/%M")
    seen = cursor.seen()
    out = []
    newest: datetime | None = None
    for info in store.list(base, start_after=start_after):
        modified = info.last_modified.astimezone(UTC)
        newest = modified if newest is None or modified > newest else newest
        landed = landing_time(info, time_from)
        if landed >= before or (info.key, info.etag) in seen:
            continue
        late = horizon is not None and landed < horizon
        if late and cursor.uploaded is not None and modified < cursor.uploaded:
            continue  # settled: it was there when the cursor last listed
        out.append(LandedFile(landed, info.key, info.etag, info.size, modified))
    return Pending(sorted(out), newest)


def batches(files: list[LandedFile], *, max_files: int, max_bytes: int) -> list[list[LandedFile]]:
    """``files`` (in landing order) cut into runs of at most ``max_files`` files and ``max_bytes``.

    A single file larger than ``max_bytes`` is a batch of its own.
    """
    out: list[list[LandedFile]] = []
    current: list[LandedFile] = []
    size = 0
    for f in files:
        if current and (len(current) >= max_files or size + f.size > max_bytes):
            out.append(current)
            current, size = [], 0
        current.append(f)
        size += f.size
    if current:
        out.append(current)
    return out


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
        [pl.col(n).dt.to_string("%Y-%m-%dT%H:%M:%S%.f%:z") if isinstance(t := frame.schema[n], pl.Datetime) and t.time_zone else pl.col(n).cast(pl.String) for n in temporal]
    )
    return frame.select(pl.struct(pl.all()).struct.json_encode().alias("_raw")).with_row_index(
        "_line", offset=first_line
    ).with_columns(pl.col("_line").cast(pl.Int64))


UNREADABLE_LINE = 0
"""``_line`` of the one row that stands for a whole file that could not be read (records start at 1)."""

UNREADABLE_INLINE_BYTES = 16 * 2**20
"""An unreadable file up to this size is kept whole in bronze (base64); a larger one by reference."""


def unreadable(data: bytes, cause: str) -> pl.DataFrame:
    """The one row standing for a file that cannot be read: its cause, its digest and its bytes.

    ``_raw`` is three lines: ``unreadable: <cause>``, ``sha256:<hex> bytes:<n>`` and
    ``base64:<the whole file>`` (for a file over :data:`UNREADABLE_INLINE_BYTES`, a note
    instead: the file stays at its key and version). ``_line`` is :data:`UNREADABLE_LINE`.
    """
    digest = f"sha256:{hashlib.sha256(data).hexdigest()} bytes:{len(data)}"
    if len(data) <= UNREADABLE_INLINE_BYTES:
        body = "base64:" + base64.b64encode(data).decode("ascii")
    else:
        body = f"base64: not kept (over {UNREADABLE_INLINE_BYTES} bytes); the file is at _source_position, _source_version"
    text = f"unreadable: {' '.join(cause.split()).replace('; ', ', ')}\n{digest}\n{body}"
    return pl.DataFrame({"_line": [UNREADABLE_LINE], "_raw": [text]}, schema={"_line": pl.Int64, "_raw": pl.String})


def _cause(what: str, exc: BaseException) -> str:
    """``gzip: Error -3 while decompressing data: invalid block type (zlib.error)``."""
    kind = type(exc).__name__ if type(exc).__module__ == "builtins" else f"{type(exc).__module__}.{type(exc).__name__}"
    return f"{what}: {exc} ({kind})"


_CSV_FIELD = r'(?:[^",]*|"(?:[^"]|"")*")'
_CSV_RECORD = rf"^{_CSV_FIELD}(?:,{_CSV_FIELD})*$"


def _csv_records(text: str) -> pl.DataFrame:
    """The rows of a CSV file (RFC 4180: ``,`` and ``"``, a header) as JSON objects of strings.

    Each row is checked on its own, so one bad row does not take the file with it: a row
    whose quoting is broken or whose field count differs from the header's becomes a
    record that says so (:data:`lakehouse.sources.records.ERROR_MEMBER`) and keeps its own text
    (:data:`lakehouse.sources.records.LINE_MEMBER`); a header that names a column twice makes every
    row such a record, since which value is which cannot be told. A quoted field may span
    lines; ``_line`` is the line a row starts on. An empty cell is null.
    """
    physical = (
        pl.DataFrame({"_raw": [text]})
        .select(pl.col("_raw").str.split("\n"))
        .explode("_raw")
        .with_row_index("_line", offset=1)
        .with_columns(pl.col("_raw").str.strip_chars_end("\r"), pl.col("_line").cast(pl.Int64))
    )
    # a row goes on while a quoted field is open (it holds a line break): quotes that open
    # (at a field's start) or close (at its end) a field count, a stray one inside does not
    quotes = pl.col("_raw").str.count_matches(r'(?:^|,)"') + pl.col("_raw").str.count_matches(r'"(?:,|$)')
    starts = ((quotes.cum_sum() - quotes) % 2 == 0).cum_sum().alias("_row")
    rows = (
        physical.with_columns(starts)
        .group_by("_row", maintain_order=True)
        .agg(pl.col("_line").first(), pl.col("_raw").str.join("\n"))
        .filter(pl.col("_raw").str.strip_chars() != "")
        .drop("_row")
    )
    if rows.is_empty():
        return pl.DataFrame(schema={"_raw": pl.String, "_line": pl.Int64})
    header_text = rows.item(0, "_raw")
    header = next(csv.reader([header_text]))
    body = rows.slice(1)
    fields = pl.col("_raw").str.replace_all(r'"(?:[^"]|"")*"', "").str.count_matches(",", literal=True) + 1
    repeated = sorted({name for name in header if header.count(name) > 1})
    problem = (
        pl.when(pl.lit(bool(repeated))).then(pl.lit(f"malformed CSV file: the header names {', '.join(repeated)} more than once"))
        .when(~pl.col("_raw").str.contains(_CSV_RECORD)).then(pl.lit("malformed CSV row: bad quoting (a quote inside an unquoted field, or one never closed)"))
        .when(fields != len(header)).then(pl.format(f"malformed CSV row: {{}} fields where the header has {len(header)}", fields))
    )
    body = body.with_columns(problem.alias("_problem"))
    good = body.filter(pl.col("_problem").is_null())
    bad = body.filter(pl.col("_problem").is_not_null())
    parts = []
    if not good.is_empty():
        table = "\n".join([header_text, *good.get_column("_raw")])
        frame = pl.read_csv(io.StringIO(table), infer_schema=False, has_header=True)
        parts.append(_records_as_json(frame, first_line=0).drop("_line").with_columns(good.get_column("_line")))
    if not bad.is_empty():
        wrapped = pl.struct(
            pl.col("_problem").alias(records.ERROR_MEMBER), pl.col("_raw").alias(records.LINE_MEMBER)
        ).struct.json_encode()
        parts.append(bad.select(wrapped.alias("_raw"), "_line"))
    if not parts:
        return pl.DataFrame(schema={"_raw": pl.String, "_line": pl.Int64})
    return pl.concat(parts).sort("_line")


def parse_file(data: bytes, *, format: FileFormat = "jsonl", compression: Compression = "none", key: str = "") -> pl.DataFrame:
    """The records of one file as ``_raw`` text and ``_line`` numbers.

    JSONL: one row per non-blank line, as received. CSV and Parquet: one JSON object per
    row (CSV values stay text: silver parses them by strict text formats, the dataset's
    source being CSV; a bad CSV row is a record of its own, see :func:`_csv_records`). A file
    that cannot be read at all (a corrupt or truncated gzip, a file that is not Parquet)
    becomes one row (:func:`unreadable`) holding its cause and the whole file, so that silver
    quarantines it with that cause instead of bronze losing it or the run failing on it.
    """
    if compression == "gzip" or key.endswith(".gz"):
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error, ValueError) as exc:
            return unreadable(data, _cause("gzip", exc))
    if format == "jsonl":
        return _lines_of_text(data.decode("utf-8-sig", errors="replace"))
    try:
        if format == "csv":
            return _csv_records(data.decode("utf-8-sig", errors="replace"))
        if format == "parquet":
            return _records_as_json(pl.read_parquet(io.BytesIO(data)), first_line=1)
    except (pl.exceptions.PolarsError, OSError) as exc:
        return unreadable(data, _cause(format, exc))
    msg = f"unknown format {format!r}"
    raise ValueError(msg)


READERS = 8
"""Landing files fetched at once by :func:`read_lines` (they are parsed one by one, in order)."""


def read_lines(
    store: ObjectStore, files: Iterable[LandedFile], *, format: FileFormat = "jsonl", compression: Compression = "none"
) -> pl.DataFrame:
    """The records of each file with their position.

    Columns: ``_raw``, ``_source_position`` (key), ``_source_version``, ``_line``
    (1-based), ``_landed_at``. Invalid UTF-8 is replaced (U+FFFD), a BOM is dropped.
    """
    files = list(files)

    def fetch(f: LandedFile) -> bytes | UnsafeKey:
        try:
            return store.get(f.key)
        except UnsafeKey as exc:  # a '..' key, or a link out of a local landing area: never read
            return exc

    frames = []
    # object stores answer one GET at a time per connection: a few at once, in order
    with ThreadPoolExecutor(max_workers=min(READERS, max(len(files), 1))) as pool:
        fetched = pool.map(fetch, files)
        for f, data in zip(files, fetched, strict=True):
            if isinstance(data, UnsafeKey):
                parsed = unreadable(b"", f"refused: {data}")
            else:
                parsed = parse_file(data, format=format, compression=compression, key=f.key)
            frames.append(parsed.with_columns(
                pl.lit(f.key).alias("_source_position"),
                pl.lit(f.version).alias("_source_version"),
                pl.lit(f.landed_at).cast(pl.Datetime("us", "UTC")).alias("_landed_at"),
            ))
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
