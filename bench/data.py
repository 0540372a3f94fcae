"""Deterministic, vectorised generators of TPC-H-shaped orders and order lines.

Every attribute of an order is a hash of ``(seed, window, n)``, so any window's orders can
be regenerated without the windows before it (an update of an earlier order keeps that
order's ``ordered_at``, hence its partition). A window ``w`` holds:

- new orders ``O-<w:06d>-<n:07d>`` (time-ordered keys) with 1–7 lines each (4 on average,
  as in TPC-H), ordered during the window;
- updates (``update_share`` of the window's lines): later versions of lines of orders of
  the previous three windows, with a newer ``updated_at``, and a new version of each of
  those orders (status moves on);
- a few exact duplicates (``duplicate_share``), which silver collapses.

Nothing loops over rows in Python: NumPy and Polars compute whole columns. Files land as
JSONL under ``<landing>/<prefix>/YYYY/MM/DD/HH/MM/part-N.jsonl`` with the window's start in
the key, so the landing source takes them by key time.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl

from lakehouse.storage import ObjectStore

START = datetime(2026, 1, 1, tzinfo=UTC)
INTERVAL = timedelta(minutes=15)
STATUSES = ("placed", "paid", "shipped", "delivered", "cancelled")
PRIORITIES = ("1-URGENT", "2-HIGH", "3-MEDIUM", "4-NOT SPECIFIED", "5-LOW")
LOOK_BACK = 3
"""Updates touch orders of at most this many earlier windows."""

_M64 = np.uint64(0xFFFFFFFFFFFFFFFF)


@dataclass(frozen=True)
class Shape:
    """The size and shape of generated windows."""

    lines: int
    """Order lines per window, updates included."""
    update_share: float = 0.10
    duplicate_share: float = 0.001
    lines_per_file: int = 50_000
    customers: int = 150_000
    parts: int = 200_000
    seed: int = 7
    start: datetime = START
    interval: timedelta = INTERVAL
    _orders: dict[int, int] = field(default_factory=dict, compare=False, repr=False)

    def window_start(self, w: int) -> datetime:
        return self.start + w * self.interval

    def window_end(self, w: int) -> datetime:
        return self.window_start(w + 1)

    def new_lines(self, w: int) -> int:
        """Lines of new orders in window ``w`` (all of them in the first window)."""
        return self.lines if w == 0 else self.lines - round(self.lines * self.update_share)


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser, elementwise on uint64 (wraps on overflow by design)."""
    with np.errstate(over="ignore"):
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))


def _hash(seed: int, *parts: np.ndarray | int) -> np.ndarray:
    """A 64-bit hash of ``seed`` and integer arrays (broadcast)."""
    h = np.full(np.broadcast(*[np.asarray(p) for p in parts]).shape, seed, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for p in parts:
            h = _mix(h * np.uint64(0x9E3779B97F4A7C15) + np.asarray(p, dtype=np.uint64))
    return h


def line_counts(shape: Shape, w: int, n: np.ndarray) -> np.ndarray:
    """How many lines order ``n`` of window ``w`` has (1–7)."""
    return (1 + _hash(shape.seed, w, n, 1) % np.uint64(7)).astype(np.int64)


def order_count(shape: Shape, w: int) -> int:
    """How many new orders window ``w`` has (its last one may have fewer lines)."""
    if w not in shape._orders:
        target = shape.new_lines(w)
        n = np.arange(target // 2 + 8)
        cum = np.cumsum(line_counts(shape, w, n))
        shape._orders[w] = int(np.searchsorted(cum, target) + 1)
    return shape._orders[w]


def _ts(seconds: pl.Expr) -> pl.Expr:
    return pl.from_epoch(seconds, time_unit="s").dt.replace_time_zone("UTC").cast(pl.Datetime("us", "UTC"))


def _money(cents: np.ndarray) -> pl.Series:
    return pl.Series(cents.astype(np.int64)).cast(pl.Decimal(12, 2)) / 100


def _orders(shape: Shape, w: np.ndarray, n: np.ndarray, version: np.ndarray, updated: np.ndarray) -> pl.DataFrame:
    """Typed orders ``(w, n)`` as of ``version`` (0: as placed), updated at epoch ``updated``."""
    h = _hash(shape.seed, w, n, 2)
    interval = int(shape.interval.total_seconds())
    start = int(shape.start.timestamp())
    ordered = start + w.astype(np.int64) * interval + (h % np.uint64(interval)).astype(np.int64)
    hv = _hash(shape.seed, w, n, version, 3)
    status = np.where(version == 0, 0, 1 + (hv % np.uint64(4)).astype(np.int64))
    return pl.DataFrame(
        {
            "_w": w.astype(np.int64),
            "_n": n.astype(np.int64),
            "customer_id": (h >> np.uint64(8)) % np.uint64(shape.customers),
            "status": status,
            "total_price": (100 + (h >> np.uint64(24)) % np.uint64(50_000_000)).astype(np.int64),
            "priority": ((h >> np.uint64(40)) % np.uint64(5)).astype(np.int64),
            "ordered_at": ordered,
            "updated_at": np.maximum(updated, ordered),
        }
    ).select(
        pl.format("O-{}-{}", pl.col("_w").cast(pl.String).str.zfill(6), pl.col("_n").cast(pl.String).str.zfill(7)).alias("order_id"),
        pl.format("C-{}", pl.col("customer_id").cast(pl.String).str.zfill(6)).alias("customer_id"),
        pl.col("status").replace_strict(dict(enumerate(STATUSES)), return_dtype=pl.String),
        (pl.col("total_price").cast(pl.Decimal(12, 2)) / 100).cast(pl.Decimal(12, 2)).alias("total_price"),
        pl.col("priority").replace_strict(dict(enumerate(PRIORITIES)), return_dtype=pl.String),
        _ts(pl.col("ordered_at")).alias("ordered_at"),
        _ts(pl.col("updated_at")).alias("updated_at"),
    )


def _lines(shape: Shape, w: np.ndarray, n: np.ndarray, line: np.ndarray, version: np.ndarray, updated: np.ndarray) -> pl.DataFrame:
    """Typed order lines ``(w, n, line)`` as of ``version``, updated at epoch ``updated``."""
    h = _hash(shape.seed, w, n, line, 4)
    hv = _hash(shape.seed, w, n, line, version, 5)
    quantity = 1 + (hv % np.uint64(50)).astype(np.int64)
    unit_cents = 100 + ((h >> np.uint64(8)) % np.uint64(100_000)).astype(np.int64)
    return pl.DataFrame(
        {
            "_w": w.astype(np.int64),
            "_n": n.astype(np.int64),
            "line_no": line.astype(np.int64),
            "part_id": ((h >> np.uint64(28)) % np.uint64(shape.parts)).astype(np.int64),
            "quantity": quantity,
            "price": quantity * unit_cents,
            "discount": ((h >> np.uint64(48)) % np.uint64(11)).astype(np.int64),
            "updated_at": updated.astype(np.int64),
        }
    ).select(
        pl.format("O-{}-{}", pl.col("_w").cast(pl.String).str.zfill(6), pl.col("_n").cast(pl.String).str.zfill(7)).alias("order_id"),
        "line_no",
        pl.format("P-{}", pl.col("part_id").cast(pl.String).str.zfill(6)).alias("part_id"),
        "quantity",
        (pl.col("price").cast(pl.Decimal(12, 2)) / 100).cast(pl.Decimal(12, 2)).alias("extended_price"),
        (pl.col("discount").cast(pl.Decimal(4, 2)) / 100).cast(pl.Decimal(4, 2)).alias("discount"),
        _ts(pl.col("updated_at")).alias("updated_at"),
    )


@dataclass(frozen=True)
class WindowData:
    """One window's records, typed (before JSON encoding)."""

    window: int
    orders: pl.DataFrame
    lines: pl.DataFrame


def new_records(shape: Shape, w: int) -> WindowData:
    """The window's new orders and their lines (no updates, no duplicates)."""
    count = order_count(shape, w)
    n = np.arange(count)
    counts = line_counts(shape, w, n)
    counts[-1] -= int(counts.sum()) - shape.new_lines(w)  # the last order takes what is left
    ww = np.full(count, w)
    orders = _orders(shape, ww, n, np.zeros(count, dtype=np.int64), np.zeros(count, dtype=np.int64))
    order_of_line = np.repeat(n, counts)
    first = np.repeat(np.cumsum(counts) - counts, counts)
    line_no = np.arange(order_of_line.size) - first + 1
    ordered = orders.get_column("ordered_at").dt.epoch("s").to_numpy()
    lines = _lines(shape, np.full(order_of_line.size, w), order_of_line, line_no,
                   np.zeros(order_of_line.size, dtype=np.int64), ordered[order_of_line])
    return WindowData(w, orders, lines)


def update_records(shape: Shape, w: int) -> WindowData:
    """Later versions, made in window ``w``, of lines and orders of the previous windows."""
    wanted = shape.lines - shape.new_lines(w)
    if w == 0 or wanted <= 0:
        empty = new_records(shape, w)
        return WindowData(w, empty.orders.clear(), empty.lines.clear())
    rng = np.random.default_rng([shape.seed, w, 6])
    first = max(0, w - LOOK_BACK)
    src_w = rng.integers(first, w, size=wanted)
    limits = np.array([order_count(shape, v) - 1 for v in range(first, w)])  # the last order is short
    src_n = (rng.random(wanted) * np.maximum(limits[src_w - first], 1)).astype(np.int64)
    # a line number that exists: the order's line count is a hash of (window, n)
    per_order = np.empty(wanted, dtype=np.int64)
    for v in range(first, w):  # at most LOOK_BACK iterations, vectorised inside
        mask = src_w == v
        per_order[mask] = line_counts(shape, v, src_n[mask])
    src_line = 1 + (rng.random(wanted) * per_order).astype(np.int64)
    keys = pl.DataFrame({"w": src_w, "n": src_n, "l": src_line}).unique(maintain_order=True)
    interval = int(shape.interval.total_seconds())
    at = int(shape.window_start(w).timestamp()) + rng.integers(0, interval, size=keys.height)
    kw, kn, kl = (keys.get_column(c).to_numpy() for c in ("w", "n", "l"))
    version = np.full(keys.height, w)
    lines = _lines(shape, kw, kn, kl, version, at)
    touched = keys.select("w", "n").with_columns(pl.Series("at", at)).group_by("w", "n", maintain_order=True).agg(pl.col("at").max())
    tw, tn = (touched.get_column(c).to_numpy() for c in ("w", "n"))
    orders = _orders(shape, tw, tn, np.full(touched.height, w), touched.get_column("at").to_numpy())
    return WindowData(w, orders, lines)


def window_records(shape: Shape, w: int) -> WindowData:
    """Everything that lands in window ``w``: new records, updates, a few duplicates."""
    new, upd = new_records(shape, w), update_records(shape, w)
    orders = pl.concat([new.orders, upd.orders])
    lines = pl.concat([new.lines, upd.lines])
    return WindowData(w, _with_duplicates(shape, orders, w, 7), _with_duplicates(shape, lines, w, 8))


def _with_duplicates(shape: Shape, frame: pl.DataFrame, w: int, salt: int) -> pl.DataFrame:
    k = int(frame.height * shape.duplicate_share)
    if k == 0:
        return frame
    rng = np.random.default_rng([shape.seed, w, salt])
    picked = frame[np.sort(rng.choice(frame.height, size=k, replace=False))]
    return pl.concat([frame, picked])


def json_lines(frame: pl.DataFrame) -> pl.Series:
    """One JSON object text per row; timestamps as ``...Z``, decimals as exact strings."""
    out = frame.with_columns(
        [pl.col(n).dt.strftime("%Y-%m-%dT%H:%M:%SZ") for n, t in frame.schema.items() if isinstance(t, pl.Datetime)]
        + [pl.col(n).cast(pl.String) for n, t in frame.schema.items() if isinstance(t, pl.Decimal)]
    )
    return out.select(pl.struct(pl.all()).struct.json_encode()).to_series()


def landing_key(prefix: str, at: datetime, part: int) -> str:
    return f"{prefix}/{at:%Y/%m/%d/%H/%M}/part-{part}.jsonl"


def file_chunks(text: pl.Series, lines_per_file: int) -> Iterator[bytes]:
    """The JSON lines as file contents of at most ``lines_per_file`` lines each."""
    for offset in range(0, max(text.len(), 1), lines_per_file):
        chunk = text.slice(offset, lines_per_file)
        if chunk.len():
            yield (chunk.str.join("\n").item() + "\n").encode()


def land_window(shape: Shape, store: ObjectStore, w: int, *, prefixes: dict[str, str] | None = None) -> dict[str, int]:
    """Write window ``w``'s JSONL files; returns lines written per dataset."""
    prefixes = prefixes or {"orders": "orders", "order_lines": "order_lines"}
    data = window_records(shape, w)
    written = {}
    for name, frame in (("orders", data.orders), ("order_lines", data.lines)):
        text = json_lines(frame)
        for part, body in enumerate(file_chunks(text, shape.lines_per_file)):
            store.put(landing_key(prefixes[name], shape.window_start(w), part), body)
        written[name] = frame.height
    return written
