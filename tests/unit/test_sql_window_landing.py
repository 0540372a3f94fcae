from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from lakehouse import sql
from lakehouse.sources.files import (
    FileCursor,
    LandedFile,
    batches,
    landing_time,
    pending_files,
    read_lines,
)
from lakehouse.storage import LocalStore, ObjectInfo
from lakehouse.window import window_ending_at


def test_literals_escape_quotes_and_refuse_unknown_types() -> None:
    assert sql.literal("O'Brien") == "'O''Brien'"
    assert sql.literal(date(2026, 1, 2)) == "'2026-01-02'"
    assert sql.literal(5) == "5"
    with pytest.raises(TypeError):
        sql.literal(object())


def test_in_list_handles_nulls_and_empty() -> None:
    assert sql.in_list("d", [None, "b", "a"], alias="t") == "(t.\"d\" IN ('a', 'b') OR t.\"d\" IS NULL)"
    assert sql.in_list("d", []) == "FALSE"


def test_identifiers_are_validated() -> None:
    with pytest.raises(ValueError):
        sql.column('x"; drop table y; --')


def test_lexicographic_greater() -> None:
    assert sql.lexicographic_greater(["a", "b"]) == '(s."a" > t."a" OR (s."a" = t."a" AND s."b" > t."b"))'


def test_window_comes_from_the_schedule() -> None:
    w = window_ending_at(datetime(2026, 1, 1, 10, 17, 42, tzinfo=UTC), timedelta(minutes=15))
    assert (w.start, w.end) == (datetime(2026, 1, 1, 10, 0, tzinfo=UTC), datetime(2026, 1, 1, 10, 15, tzinfo=UTC))
    assert str(w) == "2026-01-01 10:00–10:15"
    with pytest.raises(ValueError, match="time zone"):
        window_ending_at(datetime(2026, 1, 1), timedelta(minutes=15))


def test_landing_time_from_key_else_last_modified() -> None:
    modified = datetime(2026, 3, 3, 3, 3, tzinfo=UTC)
    assert landing_time(ObjectInfo("orders/2026/01/01/00/15/part-0.jsonl", 1, modified, "e")) == datetime(2026, 1, 1, 0, 15, tzinfo=UTC)
    assert landing_time(ObjectInfo("orders/drop.jsonl", 1, modified, "e")) == modified
    assert landing_time(ObjectInfo("orders/2026/13/45/00/15/x.jsonl", 1, modified, "e")) == modified


HOUR = timedelta(hours=1)


def test_pending_files_skips_ingested_and_future(tmp_path) -> None:
    store = LocalStore(tmp_path)
    store.put("orders/2026/01/01/00/01/part-0.jsonl", b'{"a": 1}\n')
    store.put("orders/2026/01/01/00/16/part-0.jsonl", b'{"a": 2}\n')
    before = datetime(2026, 1, 1, 0, 15, tzinfo=UTC)
    listing = pending_files(store, prefix="orders", before=before, cursor=FileCursor(), lookback=HOUR)
    assert [f.key for f in listing.files] == ["orders/2026/01/01/00/01/part-0.jsonl"]
    seen = FileCursor().advance(listing.files, prefix="orders", lookback=HOUR, uploaded=listing.uploaded)
    assert pending_files(store, prefix="orders", before=before, cursor=seen, lookback=HOUR).files == []


class CountingStore(LocalStore):
    """A local store that remembers where each listing started."""

    def __init__(self, root) -> None:  # type: ignore[no-untyped-def]
        super().__init__(root)
        self.listed: list[str | None] = []

    def list(self, prefix: str = "", *, start_after: str | None = None):  # type: ignore[no-untyped-def]
        self.listed.append(start_after)
        return super().list(prefix, start_after=start_after)


def test_the_cursor_remembers_only_its_look_back_and_never_drops_a_late_upload(tmp_path) -> None:
    store = CountingStore(tmp_path)
    for minute in range(0, 180, 15):  # three hours of files, one every 15 minutes
        at = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(minutes=minute)
        store.put(f"orders/{at:%Y/%m/%d/%H/%M}/part-0.jsonl", b'{"a": 1}\n')
    end = datetime(2026, 1, 1, 3, tzinfo=UTC)
    listing = pending_files(store, prefix="orders", before=end, cursor=FileCursor(), lookback=HOUR)
    assert len(listing.files) == 12 and store.listed == [None]
    cursor = FileCursor().advance(listing.files, prefix="orders", lookback=HOUR, uploaded=listing.uploaded)
    assert cursor.watermark == datetime(2026, 1, 1, 2, 45, tzinfo=UTC)
    assert cursor.time_ordered and cursor.uploaded == listing.uploaded
    # 01:45 … 02:45 (what the look-back can still see), and what was uploaded last
    assert {k for k, *_ in cursor.recent} >= {f"orders/2026/01/01/0{h}/{m}/part-0.jsonl" for h, m in [(1, 45), (2, 45)]}
    assert "orders/2026/01/01/00/00/part-0.jsonl" not in {k for k, *_ in cursor.recent}
    assert FileCursor.from_json(cursor.to_json()) == cursor
    assert pending_files(store, prefix="orders", before=end, cursor=cursor, lookback=HOUR).files == []

    # files uploaded after that listing are found, inside the look-back or far behind it
    store.put("orders/2026/01/01/02/05/late.jsonl", b'{"a": 2}\n')
    store.put("orders/2026/01/01/00/05/very-late.jsonl", b'{"a": 3}\n')
    store.put("orders/2026/01/01/00/15/part-0.jsonl", b'{"a": 1, "fixed": true}\n')  # a re-delivery
    again = pending_files(store, prefix="orders", before=end, cursor=cursor, lookback=HOUR)
    assert [f.key for f in again.files] == [
        "orders/2026/01/01/00/05/very-late.jsonl", "orders/2026/01/01/00/15/part-0.jsonl",
        "orders/2026/01/01/02/05/late.jsonl",
    ]
    # listing from the horizon (opt-in) starts there, and then sees only the recent one
    bounded = pending_files(store, prefix="orders", before=end, cursor=cursor, lookback=HOUR, from_horizon=True)
    assert store.listed[-1] == "orders/2026/01/01/01/44"
    assert [f.key for f in bounded.files] == ["orders/2026/01/01/02/05/late.jsonl"]


def test_a_backlog_is_cut_into_bounded_batches() -> None:
    at = datetime(2026, 1, 1, tzinfo=UTC)
    files = [LandedFile(at + timedelta(minutes=i), f"k{i}", "v", size) for i, size in enumerate([5, 5, 5, 50, 5, 5])]
    cut = batches(files, max_files=2, max_bytes=20)
    assert [[f.key for f in b] for b in cut] == [["k0", "k1"], ["k2"], ["k3"], ["k4", "k5"]]
    assert [f for b in cut for f in b] == files  # nothing lost, order kept


def test_read_lines_keeps_every_non_blank_line_with_its_position(tmp_path) -> None:
    store = LocalStore(tmp_path)
    store.put("orders/2026/01/01/00/01/p.jsonl", '\ufeff{"a": 1}\r\n\n{bad\n"é"\n'.encode())
    files = pending_files(store, prefix="orders", before=datetime(2027, 1, 1, tzinfo=UTC), cursor=FileCursor(), lookback=HOUR).files
    out = read_lines(store, files)
    assert out.get_column("_raw").to_list() == ['{"a": 1}', "{bad", '"é"']
    assert out.get_column("_line").to_list() == [1, 3, 4]
