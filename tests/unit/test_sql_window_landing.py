from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from lakehouse import sql
from lakehouse.landing import landing_time, pending_files, read_lines
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


def test_pending_files_skips_ingested_and_future(tmp_path) -> None:
    store = LocalStore(tmp_path)
    store.put("orders/2026/01/01/00/01/part-0.jsonl", b'{"a": 1}\n')
    store.put("orders/2026/01/01/00/16/part-0.jsonl", b'{"a": 2}\n')
    before = datetime(2026, 1, 1, 0, 15, tzinfo=UTC)
    files = pending_files(store, prefix="orders", before=before, ingested=set())
    assert [f.key for f in files] == ["orders/2026/01/01/00/01/part-0.jsonl"]
    again = pending_files(store, prefix="orders", before=before, ingested={(files[0].key, files[0].version)})
    assert again == []


def test_read_lines_keeps_every_non_blank_line_with_its_position(tmp_path) -> None:
    store = LocalStore(tmp_path)
    store.put("orders/2026/01/01/00/01/p.jsonl", '\ufeff{"a": 1}\r\n\n{bad\n"é"\n'.encode())
    files = pending_files(store, prefix="orders", before=datetime(2027, 1, 1, tzinfo=UTC), ingested=set())
    out = read_lines(store, files)
    assert out.get_column("_raw").to_list() == ['{"a": 1}', "{bad", '"é"']
    assert out.get_column("_line").to_list() == [1, 3, 4]
