"""SCD type 2 history (``history: scd2``) on real Delta tables.

The property: for any deliveries of versions of a few keys, with exact duplicates,
conflicting payloads at the same ``updated_at``, untracked-only changes and versions
arriving out of order, cut into batches merged in any order (any of which may be merged
again), the SCD2 table equals the version history recomputed directly from all the records
(plain Python here, by the README's rules), and holds one row per version.

Each batch goes through the engine's own pieces: ``transform.collapse`` by
``scd2.identity`` (as ``prepare`` does) and ``scd2.merge_history`` (as ``merge`` does),
into a table created with ``silver_schema``.
"""

from __future__ import annotations

import dataclasses
import tempfile
from datetime import UTC, datetime, timedelta
from itertools import groupby

import polars as pl
import pytest
from deltalake import CommitProperties, DeltaTable
from hypothesis import given, settings
from hypothesis import strategies as st

from lakehouse.commit import ensure_table, open_table
from lakehouse.layers.silver import scd2, silver_schema
from lakehouse.layers.silver.transform import DELETED, collapse, order_columns
from lakehouse.specs import Column, TableSpec
from tests.unit.test_merge_properties import plans

SPEC = TableSpec(
    "customers",
    "silver",
    (
        Column("id", "int64", nullable=False),
        Column("tier", "string"),
        Column("email", "string"),
        Column("updated_at", "timestamp"),
    ),
    keys=("id",),
    order_by="updated_at",
    tracked=("tier",),
)
T0 = datetime(2026, 1, 1, tzinfo=UTC)
UTC_US = pl.Datetime("us", "UTC")
SCHEMA = {
    "id": pl.Int64, "tier": pl.String, "email": pl.String, "updated_at": UTC_US, "_batch_id": pl.String,
    "_source_position": pl.String, "_line": pl.Int64, "_landed_at": UTC_US, "_bronze_version": pl.Int64, DELETED: pl.Boolean,
}
SEEN = ["id", "tier", "email", "updated_at", "valid_from", "valid_to", "is_current"]


@st.composite
def deliveries(draw: st.DrawFn) -> list[dict]:
    """Records as bronze delivers them: few keys, tiers, emails and timestamps, so that ties,
    untracked-only changes and returns to an earlier tier are common."""
    n = draw(st.integers(min_value=1, max_value=16))
    rows: list[dict] = []
    for line in range(n):
        if rows and draw(st.booleans()) and draw(st.booleans()):  # the same record delivered again
            record = {k: rows[draw(st.integers(0, len(rows) - 1))][k] for k in ("id", "tier", "email", "updated_at")}
        else:
            record = {
                "id": draw(st.integers(0, 2)),
                "tier": draw(st.sampled_from(["gold", "silver", None])),
                "email": draw(st.sampled_from(["a@x", "b@x"])),
                "updated_at": T0 + timedelta(minutes=draw(st.integers(0, 5))),
            }
        rows.append({
            **record, "_batch_id": "b", "_source_position": draw(st.sampled_from(["a.jsonl", "b.jsonl"])), "_line": line + 1,
            "_landed_at": T0 + timedelta(hours=draw(st.integers(0, 2))), "_bronze_version": draw(st.integers(1, 3)),
            DELETED: False,
        })
    return rows


def recomputed(rows: list[dict]) -> pl.DataFrame:
    """The history by the README's rules, from all records at once: per key and instant the
    latest delivery; a version per run of equal ``tier``; ``email`` from the key's latest record."""
    rank = order_columns(SPEC)
    out = []
    for key, group in groupby(sorted(rows, key=lambda r: r["id"]), key=lambda r: r["id"]):
        winners = {}
        for r in sorted(group, key=lambda r: tuple(r[c] for c in rank)):
            winners[r["updated_at"]] = r  # the greatest by the documented order wins its instant
        records = [winners[t] for t in sorted(winners)]
        email = records[-1]["email"]
        starts = [r for i, r in enumerate(records) if i == 0 or r["tier"] != records[i - 1]["tier"]]
        for i, r in enumerate(starts):
            valid_to = starts[i + 1]["updated_at"] if i + 1 < len(starts) else None
            out.append({
                "id": key, "tier": r["tier"], "email": email, "updated_at": r["updated_at"],
                "valid_from": r["updated_at"], "valid_to": valid_to, "is_current": valid_to is None,
            })
    schema = {**{k: SCHEMA[k] for k in SEEN[:4]}, "valid_from": UTC_US, "valid_to": UTC_US, "is_current": pl.Boolean}
    return pl.DataFrame(out, schema=schema).sort("id", "valid_from")


def merge(uri: str, batch: pl.DataFrame) -> None:
    valid = collapse(batch.lazy(), scd2.identity(SPEC)).collect()
    table = open_table(uri, {})
    assert table is not None
    scd2.merge_history(table, SPEC, valid, silver_schema(SPEC), CommitProperties())


def read(uri: str) -> pl.DataFrame:
    return pl.read_delta(uri).select(SEEN).sort("id", "valid_from")


@pytest.mark.filterwarnings("ignore:Do not use the `random` module inside strategies:hypothesis.errors.HypothesisDeprecationWarning")
@settings(max_examples=40, deadline=None)
@given(plans(deliveries()))
def test_the_history_equals_a_recomputation_from_all_records_whatever_the_batches_and_their_order(plan) -> None:
    rows, batches, order = plan
    with tempfile.TemporaryDirectory() as folder:
        ensure_table(folder, silver_schema(SPEC), {})
        for j in order:
            merge(folder, pl.DataFrame([rows[i] for i in batches[j]], schema=SCHEMA))
        history = read(folder)
    expected = recomputed(rows)
    assert history.equals(expected), (history, expected)


def record(key: int, tier: str, email: str, minute: int, *, line: int, deleted: bool = False) -> dict:
    return {
        "id": key, "tier": tier, "email": email, "updated_at": T0 + timedelta(minutes=minute), "_batch_id": "b",
        "_source_position": f"f{line}.jsonl", "_line": 1, "_landed_at": T0 + timedelta(hours=line),
        "_bronze_version": line, DELETED: deleted,
    }


def test_a_late_change_splits_its_interval_and_a_delete_closes_the_current_row(tmp_path) -> None:
    uri = str(tmp_path / "customers")
    ensure_table(uri, silver_schema(SPEC), {})

    def at(minute: int) -> datetime:
        return T0 + timedelta(minutes=minute)

    merge(uri, pl.DataFrame([record(1, "silver", "a@x", 0, line=1), record(1, "gold", "a@x", 10, line=1)], schema=SCHEMA))
    merge(uri, pl.DataFrame([record(1, "gold", "b@x", 15, line=2)], schema=SCHEMA))  # untracked only: in place
    rows = read(uri)
    assert rows.select("tier", "email", "valid_from", "valid_to", "is_current").rows() == [
        ("silver", "b@x", at(0), at(10), False), ("gold", "b@x", at(10), None, True),
    ]
    # late: bronze between silver@0 and gold@10 → [0,5) silver, [5,10) bronze; gold@10 keeps its valid_from
    merge(uri, pl.DataFrame([record(1, "bronze", "c@x", 5, line=3)], schema=SCHEMA))
    rows = read(uri)
    assert rows.select("tier", "valid_from", "valid_to", "is_current").rows() == [
        ("silver", at(0), at(5), False), ("bronze", at(5), at(10), False), ("gold", at(10), None, True),
    ]
    assert set(rows.get_column("email")) == {"b@x"}  # the late record is not the key's latest: email stays
    # a delete closes the current row at its ordering value; history stays
    merge(uri, pl.DataFrame([record(1, "", "", 20, line=4, deleted=True)], schema=SCHEMA))
    rows = read(uri)
    assert rows.select("tier", "valid_to", "is_current").rows() == [
        ("silver", at(5), False), ("bronze", at(10), False), ("gold", at(20), False),
    ]
    # a record after the delete opens a new current version; the same batch again changes nothing
    again = pl.DataFrame([record(1, "gold", "d@x", 30, line=5)], schema=SCHEMA)
    merge(uri, again)
    version = DeltaTable(uri).version()
    merge(uri, again)
    assert DeltaTable(uri).version() == version + 1  # a commit (its transaction), no version row
    rows = read(uri)
    assert rows.select("tier", "valid_from", "valid_to", "is_current").rows()[-2:] == [
        ("gold", at(10), at(20), False), ("gold", at(30), None, True),
    ]
    # the untracked-only change at 15 was absorbed: a late tier change at 12 splits gold@10 and gold resumes at 15
    merge(uri, pl.DataFrame([record(1, "silver", "e@x", 12, line=6)], schema=SCHEMA))
    assert read(uri).select("tier", "valid_from", "valid_to").rows()[2:] == [
        ("gold", at(10), at(12)), ("silver", at(12), at(15)), ("gold", at(15), at(20)), ("gold", at(30), None),
    ]


def test_a_column_the_batch_adds_is_untracked_and_earlier_versions_read_null_in_it(tmp_path) -> None:
    uri = str(tmp_path / "customers")
    ensure_table(uri, silver_schema(SPEC), {})
    merge(uri, pl.DataFrame([record(1, "silver", "a@x", 0, line=1)], schema=SCHEMA))
    evolved = dataclasses.replace(SPEC, columns=(*SPEC.columns, Column("phone", "string")))
    batch = pl.DataFrame([record(1, "gold", "a@x", 10, line=2)], schema=SCHEMA).with_columns(pl.lit("555").alias("phone"))
    table = DeltaTable(uri)
    scd2.merge_history(
        table, evolved, collapse(batch.lazy(), scd2.identity(evolved)).collect(), silver_schema(evolved), CommitProperties(),
        merge_schema=True,
    )
    rows = pl.read_delta(uri).sort("valid_from").select("tier", "phone", "is_current").rows()
    assert rows == [("silver", "555", False), ("gold", "555", True)]  # untracked: the key's latest value on every version
