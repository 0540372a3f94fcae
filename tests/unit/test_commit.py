"""Exactly-once at the commit: a write whose acknowledgement is lost is not written twice."""

from __future__ import annotations

import pyarrow as pa
import pytest
from deltalake import DeltaTable, write_deltalake

from lakehouse.commit import app_id, commit_properties, ensure_table, write_once

SCHEMA = pa.schema([pa.field("k", pa.large_string())])
APP = app_id("silver/t", "bronze/t_raw")


def append(uri: str, version: int) -> None:
    write_deltalake(uri, pa.table({"k": ["a"]}, schema=SCHEMA), mode="append",
                    commit_properties=commit_properties({APP: version}, {"rows": 1}))


def test_a_commit_whose_acknowledgement_was_lost_counts_as_done(tmp_path) -> None:
    uri = str(tmp_path / "t")
    ensure_table(uri, SCHEMA, {})
    calls = []

    def lands_then_raises(table: DeltaTable, props: object) -> None:
        calls.append(1)
        append(uri, 1)
        raise OSError("connection reset while reading the response")

    landed = write_once(uri, {}, transactions={APP: 1}, write=lands_then_raises)
    assert landed.already and calls == [1]
    # a retry (a Prefect task retry, or a re-run) reads the version and writes nothing
    again = write_once(uri, {}, transactions={APP: 1}, write=lambda table, props: append(uri, 1))
    assert again.already
    table = DeltaTable(uri)
    assert table.to_pyarrow_table().num_rows == 1
    assert table.transaction_version(APP) == 1
    assert table.history(1)[0]["lakehouse.rows"] == "1"


def test_a_write_that_did_not_land_raises_and_leaves_progress_unchanged(tmp_path) -> None:
    uri = str(tmp_path / "t")
    ensure_table(uri, SCHEMA, {})

    def fails(table: DeltaTable, props: object) -> None:
        raise OSError("endpoint down")

    with pytest.raises(OSError, match="endpoint down"):
        write_once(uri, {}, transactions={APP: 1}, write=fails)
    assert DeltaTable(uri).transaction_version(APP) is None
    landed = write_once(uri, {}, transactions={APP: 1}, write=lambda table, props: append(uri, 1))
    assert not landed.already and DeltaTable(uri).to_pyarrow_table().num_rows == 1


def test_every_transaction_must_be_committed_for_a_write_to_count_as_done(tmp_path) -> None:
    uri = str(tmp_path / "t")
    ensure_table(uri, SCHEMA, {})
    other = app_id("gold/g", "silver/u")
    append(uri, 3)  # APP at 3, other never
    done = write_once(uri, {}, transactions={APP: 3, other: 1}, write=lambda table, props: write_deltalake(
        table, pa.table({"k": ["b"]}, schema=SCHEMA), mode="append", commit_properties=props))
    assert not done.already
    assert DeltaTable(uri).transaction_version(other) == 1
