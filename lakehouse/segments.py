"""Monthly customer segments: RFM (recency, frequency, monetary) scores and a named segment per
customer per month, in ``gold.customer_segments`` (partitioned by ``month``).

A month's segments are computed as of its end, from the orders of the 12 months before it
(``silver.orders`` not cancelled, their lines in ``silver.order_items``), read with partition
pushdown on ``order_date``:

- ``recency_days``: days from the customer's last order to the month's last day;
- ``frequency``: their orders; ``monetary``: the sum of their lines' ``quantity × unit_price``;
- ``r_score``, ``f_score``, ``m_score``: 1–5 by rank among the customers scored that month,
  ``1 + floor(5 × (rank − 1) ÷ customers)`` (5: the most recent, the most frequent, the most
  spent); equal values share a rank and so a score, so nothing depends on row order and a
  month computed twice from the same silver is the same;
- ``segment``: ``champions`` (R ≥ 4, F ≥ 4), ``loyal`` (R ≥ 3, F ≥ 3), ``promising``
  (R ≥ 4), ``at_risk`` (R ≤ 2, F ≥ 3), ``hibernating`` (R ≤ 2, F ≤ 2), else
  ``needs_attention``.

Writing a month replaces that month's partition and nothing else (one commit, its silver
versions in the commit's metadata), so any past month can be recomputed (``lakehouse
segments --month 2026-01``) and a re-run of the same silver writes the same rows.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

import polars as pl
import pyarrow as pa

from lakehouse import duck, sql
from lakehouse.commit import gold_app, open_table
from lakehouse.config import Settings
from lakehouse.errors import ConfigError
from lakehouse.storage import storage_options

TABLE = "customer_segments"
SEGMENTS = ("champions", "loyal", "promising", "needs_attention", "at_risk", "hibernating")
LOOKBACK_MONTHS = 12
READS = frozenset({"orders", "order_items"})
"""The silver tables the segments read: a pipeline with both has ``gold.customer_segments``."""

SCHEMA = pa.schema([
    ("month", pa.date32()),
    ("customer_id", pa.large_string()),
    ("recency_days", pa.int64()),
    ("frequency", pa.int64()),
    ("monetary", pa.decimal128(18, 2)),
    ("r_score", pa.int64()),
    ("f_score", pa.int64()),
    ("m_score", pa.int64()),
    ("rfm", pa.large_string()),
    ("segment", pa.large_string()),
])

_RFM = """
WITH orders AS (
    SELECT order_id, customer_id, ordered_at
    FROM delta_scan({orders})
    WHERE order_date >= {since} AND order_date < {end}
      AND ordered_at < {end}::TIMESTAMPTZ AND status <> 'cancelled' AND customer_id IS NOT NULL
), spent AS (
    SELECT o.customer_id, o.order_id, o.ordered_at, coalesce(sum(i.quantity * i.unit_price), 0) AS amount
    FROM orders AS o LEFT JOIN delta_scan({items}) AS i USING (order_id)
    GROUP BY ALL
), customers AS (
    SELECT customer_id,
           CAST(date_diff('day', CAST(max(ordered_at) AS DATE), {last}) AS BIGINT) AS recency_days,
           CAST(count(*) AS BIGINT) AS frequency,
           CAST(sum(amount) AS DECIMAL(18,2)) AS monetary
    FROM spent GROUP BY customer_id
), scored AS (
    SELECT *,
           {r} AS r_score, {f} AS f_score, {m} AS m_score
    FROM customers
)
SELECT {month} AS month, customer_id, recency_days, frequency, monetary, r_score, f_score, m_score,
       concat(r_score, f_score, m_score) AS rfm,
       CASE WHEN r_score >= 4 AND f_score >= 4 THEN 'champions'
            WHEN r_score >= 3 AND f_score >= 3 THEN 'loyal'
            WHEN r_score >= 4 THEN 'promising'
            WHEN r_score <= 2 AND f_score >= 3 THEN 'at_risk'
            WHEN r_score <= 2 AND f_score <= 2 THEN 'hibernating'
            ELSE 'needs_attention' END AS segment
FROM scored ORDER BY customer_id
"""


@dataclass(frozen=True)
class MonthSegments:
    """What computing one month wrote."""

    month: date
    customers: int
    segments: dict[str, int]
    """Customers per segment, in :data:`SEGMENTS` order (segments with none left out)."""
    version: int | None
    """The version of ``gold.customer_segments`` written, None when no customer ordered."""
    consumed: dict[str, int]
    """The silver versions read."""


def parse_month(text: str) -> date:
    """``2026-01`` as the month's first day; raises ValueError for anything else."""
    if not re.fullmatch(r"\d{4}-\d{2}", text.strip()):
        msg = f"{text!r} is not a month: expected YYYY-MM, e.g. 2026-01"
        raise ValueError(msg)
    return date.fromisoformat(text.strip() + "-01")


def _shift(month: date, months: int) -> date:
    index = month.year * 12 + month.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


def previous_month(today: date) -> date:
    """The month before ``today``'s: what the monthly deployment computes."""
    return _shift(today.replace(day=1), -1)


def _score(order: str) -> str:
    """1–5 by the rank of ``order`` among the month's customers: equal values, equal scores."""
    return f"1 + CAST(floor(5 * (rank() OVER (ORDER BY {order}) - 1) / count(*) OVER ()) AS BIGINT)"


def compute(settings: Settings, month: date) -> tuple[pa.Table, dict[str, int]]:
    """The segments of ``month`` (its first day) from the current silver tables, and their versions."""
    options = storage_options(settings)
    tables = {n: open_table(settings.table_uri("silver", n), options) for n in ("orders", "order_items")}
    found = {n: t for n, t in tables.items() if t is not None}
    if len(found) < len(tables):
        missing = ", ".join(f"silver.{n}" for n in tables if n not in found)
        msg = f"customer segments read silver.orders and silver.order_items: {missing} does not exist yet (run a window first)"
        raise ConfigError(msg)
    end = _shift(month, 1)
    query = _RFM.format(
        orders=sql.literal(found["orders"].table_uri),
        items=sql.literal(found["order_items"].table_uri),
        since=f"DATE '{_shift(month, 1 - LOOKBACK_MONTHS)}'",
        month=f"DATE '{month}'",
        end=f"DATE '{end}'",
        last=f"DATE '{date.fromordinal(end.toordinal() - 1)}'",
        r=_score("recency_days DESC"), f=_score("frequency"), m=_score("monetary"),
    )
    con = duck.connect(settings)
    try:
        rows = con.execute(query).to_arrow_table().cast(SCHEMA)
    finally:
        con.close()
    return rows, {f"silver.{n}": t.version() for n, t in found.items()}


def write(settings: Settings, month: date) -> MonthSegments:
    """Compute ``month`` and replace its partition of ``gold.customer_segments`` (one commit)."""
    from deltalake import CommitProperties, Transaction, write_deltalake

    rows, consumed = compute(settings, month)
    counted = pl.DataFrame({"segment": rows.column("segment")}).group_by("segment").len()  # one row per segment
    found = dict(counted.iter_rows())
    segments = {k: found[k] for k in SEGMENTS if k in found}
    if rows.num_rows == 0:
        return MonthSegments(month, 0, {}, None, consumed)
    uri = settings.table_uri("gold", TABLE)
    options = storage_options(settings)
    exists = open_table(uri, options) is not None
    write_deltalake(
        uri, rows, mode="overwrite", partition_by=["month"], storage_options=options,
        predicate=f"month = '{month}'" if exists else None,
        commit_properties=CommitProperties(
            custom_metadata={"lakehouse.segments": f"{month:%Y-%m}", **{k: str(v) for k, v in consumed.items()}},
            # what it read, as a gold model records it (``lakehouse history`` shows it)
            app_transactions=[Transaction(app_id=gold_app(TABLE, k.removeprefix("silver.")), version=v)
                              for k, v in consumed.items()],
        ),
    )
    table = open_table(uri, options)
    return MonthSegments(month, rows.num_rows, segments, None if table is None else table.version(), consumed)
