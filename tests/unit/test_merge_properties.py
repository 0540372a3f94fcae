"""Property tests of silver's merge (issue 11, item 7), on real Delta tables.

For any set of deliveries of versions of a few keys, with exact duplicates, conflicting
payloads at the same ``updated_at``, and versions arriving out of order, cut into batches
that are merged in any order and any of which may be merged again: silver ends equal to
"the latest version per key" computed directly, by the documented order
(``updated_at``, then ``_landed_at``, ``_source_position``, ``_bronze_version``, ``_line``).

Each batch goes through the engine's own pieces: ``transform.collapse`` picks a batch's
winner per key, and the merge is delta-rs' with silver's predicates
(``sql.keys_equal``, ``when_matched_update_all(predicate=sql.lexicographic_greater(...))``).
"""

from __future__ import annotations

import tempfile
from datetime import UTC, datetime, timedelta

import polars as pl
import pytest
from deltalake import DeltaTable, write_deltalake
from hypothesis import given, settings
from hypothesis import strategies as st

from lakehouse import sql
from lakehouse.layers.silver.transform import collapse, order_columns
from lakehouse.specs import Column, TableSpec

SPEC = TableSpec(
    "items",
    "silver",
    (
        Column("id", "int64", nullable=False),
        Column("amount", "int64"),
        Column("updated_at", "timestamp"),
        Column("_landed_at", "timestamp"),
        Column("_source_position", "string"),
        Column("_bronze_version", "int64"),
        Column("_line", "int64"),
    ),
    keys=("id",),
    order_by="updated_at",
)
T0 = datetime(2026, 1, 1, tzinfo=UTC)
SCHEMA = {
    "id": pl.Int64, "amount": pl.Int64, "updated_at": pl.Datetime("us", "UTC"), "_landed_at": pl.Datetime("us", "UTC"),
    "_source_position": pl.String, "_bronze_version": pl.Int64, "_line": pl.Int64,
}


@st.composite
def deliveries(draw: st.DrawFn) -> list[dict]:
    """Rows as bronze delivers them: few keys and few timestamps, so that ties are common.

    A row's lineage (file, bronze version, line) is unique; an exact duplicate is the same
    record delivered again under another lineage, a conflict another payload at the same
    ``updated_at``.
    """
    n = draw(st.integers(min_value=1, max_value=14))
    rows = []
    for line in range(n):
        if rows and draw(st.booleans()) and draw(st.booleans()):  # a re-delivery of an earlier record
            record = {k: rows[draw(st.integers(0, len(rows) - 1))][k] for k in ("id", "amount", "updated_at")}
        else:
            record = {
                "id": draw(st.integers(0, 3)),
                "amount": draw(st.integers(0, 5)),
                "updated_at": T0 + timedelta(minutes=draw(st.integers(0, 3))),
            }
        rows.append({
            **record,
            "_landed_at": T0 + timedelta(hours=draw(st.integers(0, 2))),
            "_source_position": draw(st.sampled_from(["a.jsonl", "b.jsonl"])),
            "_bronze_version": draw(st.integers(1, 3)),
            "_line": line + 1,
        })
    return rows


@st.composite
def plans(
    draw: st.DrawFn, records: st.SearchStrategy[list[dict]] | None = None
) -> tuple[list[dict], list[list[int]], list[int]]:
    """Rows (``records``, else :func:`deliveries`), their cut into batches, and the order the
    batches are merged in (repeats allowed). Also the plans of ``test_scd2``."""
    rows = draw(records if records is not None else deliveries())
    k = draw(st.integers(1, min(4, len(rows))))
    batch_of = [draw(st.integers(0, k - 1)) for _ in rows]
    batches = [[i for i, b in enumerate(batch_of) if b == j] for j in range(k)]
    batches = [b for b in batches if b]
    order = draw(st.permutations(range(len(batches))))
    repeats = draw(st.lists(st.integers(0, len(batches) - 1), max_size=2))
    return rows, batches, [*order, *repeats]


def latest_per_key(rows: list[dict]) -> pl.DataFrame:
    """What silver must hold, computed directly: per key the greatest row by the documented order."""
    best: dict[int, dict] = {}
    for row in rows:
        rank = tuple(row[c] for c in order_columns(SPEC))
        if row["id"] not in best or rank > tuple(best[row["id"]][c] for c in order_columns(SPEC)):
            best[row["id"]] = row
    return pl.DataFrame(list(best.values()), schema=SCHEMA).sort("id")


def merge(uri: str, batch: pl.DataFrame) -> None:
    source = collapse(batch.lazy(), SPEC).collect()
    (
        DeltaTable(uri)
        .merge(source.to_arrow(), sql.keys_equal(SPEC.keys), source_alias="s", target_alias="t")
        .when_matched_update_all(predicate=sql.lexicographic_greater(order_columns(SPEC)))
        .when_not_matched_insert_all()
        .execute()
    )


# Hypothesis warns when the global ``random`` state changes while it draws an example; the
# strategies here draw only from ``st`` (no ``random``), but other threads of the test process
# may draw from the global generator meanwhile (Prefect's jitter for client retries, lease
# renewals and service loops: prefect/utilities/math.py), so the warning came once in CI as
# a flaky failure that had nothing to do with the merge
@pytest.mark.filterwarnings("ignore:Do not use the `random` module inside strategies:hypothesis.errors.HypothesisDeprecationWarning")
@settings(max_examples=40, deadline=None)
@given(plans())
def test_silver_is_the_latest_version_per_key_whatever_the_batches_and_their_order(plan) -> None:
    rows, batches, order = plan
    with tempfile.TemporaryDirectory() as folder:
        write_deltalake(folder, pl.DataFrame(schema=SCHEMA).to_arrow())
        for j in order:
            merge(folder, pl.DataFrame([rows[i] for i in batches[j]], schema=SCHEMA))
        silver = pl.read_delta(folder).sort("id")
    expected = latest_per_key(rows)
    assert silver.equals(expected), (silver, expected)
