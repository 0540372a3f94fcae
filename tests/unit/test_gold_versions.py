"""A late change of an SCD2 dimension touches only the gold partitions whose lookups see another version.

The feed of a version closed at ``T`` holds its pre-image, valid from long before ``T``:
taken as it is, every sale of the product since then would be touched.
:func:`lakehouse.layers.gold.versions.changed_spans` keeps the span after ``T`` only, and
:func:`lakehouse.layers.gold.models.touched_partitions` finds the days whose rows differ, with
an inner or a left join to the dimension.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

import polars as pl
import pyarrow as pa
import pytest

from lakehouse.layers.gold.models import run_model, touched_partitions
from lakehouse.layers.gold.versions import changed_spans
from lakehouse.specs import Column, TableSpec

SPEC = TableSpec(
    name="product_history", layer="silver",
    columns=(Column("product_id", "string"), Column("category", "string"), Column("updated_at", "timestamp")),
    keys=("product_id",), order_by="updated_at", tracked=("category",),
)
COLUMNS = ("product_id", "category", "updated_at", "valid_from", "valid_to", "is_current")
V0, T = datetime(2025, 12, 1, tzinfo=UTC), datetime(2026, 1, 2, 12, tzinfo=UTC)
SCHEMA = {"product_id": pl.String, "category": pl.String, "updated_at": pl.Datetime("us", "UTC"),
          "valid_from": pl.Datetime("us", "UTC"), "valid_to": pl.Datetime("us", "UTC"), "is_current": pl.Boolean}


def _versions(*rows: tuple) -> pl.DataFrame:
    return pl.DataFrame(list(rows), schema=SCHEMA, orient="row")


def _feed(*images: tuple[str, tuple]) -> pl.DataFrame:
    frame = _versions(*(row for _, row in images))
    return frame.with_columns(pl.Series("_change_type", [kind for kind, _ in images]), pl.lit(3).alias("_commit_version"))


OLD = ("P-1", "toys", V0, V0, None, True)
CLOSED = ("P-1", "toys", V0, V0, T, False)
LATE = ("P-1", "games", T, T, None, True)
SALES = pa.table({
    "order_id": ["O-1", "O-2", "O-3", "O-4"],
    "product_id": ["P-1", "P-1", "P-1", "P-2"],
    "ordered_at": pa.array([datetime(2026, 1, 1, 9, tzinfo=UTC), datetime(2026, 1, 2, 9, tzinfo=UTC),
                            datetime(2026, 1, 3, 9, tzinfo=UTC), datetime(2026, 1, 3, 10, tzinfo=UTC)], pa.timestamp("us", "UTC")),
    "order_date": [date(2026, 1, 1), date(2026, 1, 2), date(2026, 1, 3), date(2026, 1, 3)],
})
JOIN = """
SELECT s.order_date, coalesce(p.category, 'unknown') AS category, count(*) AS n
FROM silver.sales AS s {kind} JOIN silver.product_history AS p
  ON p.product_id = s.product_id AND p.valid_from <= s.ordered_at AND (p.valid_to IS NULL OR s.ordered_at < p.valid_to)
GROUP BY ALL
"""


def test_a_late_version_changes_only_the_span_after_it() -> None:
    now = _versions(CLOSED, LATE).to_arrow()
    feed = _feed(("update_preimage", OLD), ("update_postimage", CLOSED), ("insert", LATE))
    spans = changed_spans(SPEC, feed, now, COLUMNS).sort("category")
    assert spans.select("category", "valid_from", "valid_to").rows() == [("games", T, None), ("toys", T, None)]


def test_a_record_absorbed_into_its_version_changes_no_span() -> None:
    touched = ("P-1", "toys", datetime(2026, 1, 5, tzinfo=UTC), V0, None, True)  # a later record, the same category
    feed = _feed(("update_preimage", OLD), ("update_postimage", touched))
    assert changed_spans(SPEC, feed, _versions(touched).to_arrow(), COLUMNS).is_empty()


@pytest.mark.parametrize("kind", ["INNER", "LEFT"])
def test_the_days_touched_are_those_after_the_late_change_and_their_rows_are_right(kind: str) -> None:
    sql = JOIN.format(kind=kind)
    now = _versions(CLOSED, LATE).to_arrow()
    feed = _feed(("update_preimage", OLD), ("update_postimage", CLOSED), ("insert", LATE))
    spans = changed_spans(SPEC, feed, now, COLUMNS).to_arrow()
    days = touched_partitions(
        sql, "order_date", changes={"product_history": spans}, old={"product_history": _versions(OLD).to_arrow()},
        current={"sales": SALES, "product_history": now}, looked_up=frozenset({"product_history"}),
    )
    assert days == [date(2026, 1, 3)]  # O-2 on the 2nd was before T; the 1st never saw P-1 change
    before = pl.from_arrow(run_model(sql, {"sales": SALES, "product_history": _versions(OLD).to_arrow()}))
    after = pl.from_arrow(run_model(sql, {"sales": SALES, "product_history": now}))
    assert isinstance(before, pl.DataFrame) and isinstance(after, pl.DataFrame)
    moved = after.join(before, on=after.columns, how="anti").get_column("order_date").unique().to_list()
    assert moved == days  # exactly the days whose rows differ
