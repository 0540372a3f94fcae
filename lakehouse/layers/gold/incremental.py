"""Additive gold models, maintained from their inputs' changes (``incremental:`` in the declaration).

A model declared ``incremental: {by: order_id, count: lines}`` promises that each result
row is a sum, over entities (the values of ``by``, a column of every input), of what each
entity's own input rows contribute: a ``GROUP BY`` of sums and counts over inputs joined on
``by``, where ``count(DISTINCT by)`` counts each entity once. Recomputing the partitions a
change touches reads the whole partition (a daily model reads the whole day, whose size
grows through the day); maintaining it reads only the changed entities:

1. the entities the inputs' change data feeds name (in any image: an entity a row left
   changed too);
2. each input's rows of those entities now (the current snapshot filtered to them: DuckDB
   reads only the files whose statistics can hold them) and as the model last saw them
   (the same rows, less those the feed changed, plus each changed row's first pre-image);
3. the model over both: new − old is the change of every result row they reach;
4. the gold rows of the partitions those result rows fall in, plus that change. A row
   whose ``count`` falls to 0 is gone; a count below 0, or a 0 count with other sums left,
   means the model is not additive as declared, and the batch fails saying so.

The result is the same table a recomputation gives (``tests/integration/test_gold_incremental.py``
holds it against :func:`lakehouse.layers.gold.rebuild`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import duckdb
import polars as pl
import pyarrow as pa

from lakehouse.errors import TerminalError
from lakehouse.layers.gold.models import DeltaSnapshot, run_model
from lakehouse.specs import GoldModel, quote


class NotAdditive(TerminalError):
    """A model declared ``incremental`` gave a result that sums cannot reach (a count below 0)."""


_FIRST = {"update_preimage": 0, "delete": 0, "insert": 0, "update_postimage": 1}
"""Within one commit a key's pre-image comes before its post-image."""


def first_images(changes: pl.DataFrame, keys: Sequence[str]) -> pl.DataFrame:
    """The rows the feed's first change of each key replaced (none for a key it inserted)."""
    rank = pl.col("_change_type").replace_strict(_FIRST, return_dtype=pl.Int8).alias("__rank")
    first = (
        changes.with_columns(rank)
        .sort(["_commit_version", "__rank"], maintain_order=True)
        .unique(subset=list(keys), keep="first", maintain_order=True)
    )
    return first.filter(pl.col("_change_type").is_in(["update_preimage", "delete"])).drop("__rank")


def entities(changes: Mapping[str, pl.DataFrame], by: str) -> pl.DataFrame:
    """Every value of ``by`` in any image of any input's changes (nulls included)."""
    return pl.concat([c.select(pl.col(by)) for c in changes.values()], how="vertical_relaxed").unique()


def _of_entities(
    con: duckdb.DuckDBPyConnection, snapshots: Mapping[str, DeltaSnapshot], by: str, found: pl.DataFrame
) -> dict[str, pa.Table]:
    """Each snapshot's rows whose ``by`` is one of ``found``: a semi-join on one temporary
    table of them, plus their range as a literal filter so that ``delta_scan`` skips files
    by their statistics."""
    values = found.get_column(by)
    present = values.drop_nulls()
    column = quote(by)
    params: list[Any] = []
    if present.len():
        con.register("__entities_arrow", pl.DataFrame({by: present}).to_arrow())
        con.execute(f"CREATE OR REPLACE TEMP TABLE __entities AS SELECT {column} FROM __entities_arrow")
        con.unregister("__entities_arrow")
        params = [present.min(), present.max()]

    def rows(snapshot: DeltaSnapshot) -> pa.Table:
        scan = f"{snapshot.scan(con)} AS t"
        parts = []
        if params:
            parts.append(f"{scan} WHERE t.{column} BETWEEN ? AND ? AND t.{column} IN (SELECT {column} FROM __entities)")
        if values.null_count():
            parts.append(f"{scan} WHERE t.{column} IS NULL")
        if not parts:
            return con.execute(f"{scan} LIMIT 0").to_arrow_table()
        return con.execute(" UNION ALL ".join(parts), params).to_arrow_table()

    return {n: rows(snapshot) for n, snapshot in snapshots.items()}


def rows_before(now: pa.Table, changes: pl.DataFrame, keys: Sequence[str], columns: Sequence[str]) -> pa.Table:
    """The rows ``now`` held before the feed's changes: less the changed keys, plus their first pre-images."""
    current = pl.from_arrow(now)
    assert isinstance(current, pl.DataFrame)
    changed = changes.select(list(keys)).unique()
    kept = current.join(changed, on=list(keys), how="anti", nulls_equal=True)
    old = first_images(changes, keys).select(list(columns))
    return pl.concat([kept, old.cast(kept.schema)]).to_arrow()


def maintain(
    model: GoldModel,
    *,
    current: Mapping[str, DeltaSnapshot],
    changes: Mapping[str, pl.DataFrame],
    keys: Mapping[str, Sequence[str]],
    gold: pl.LazyFrame | None,
    con: duckdb.DuckDBPyConnection,
) -> tuple[list[Any], pa.Table]:
    """The partitions the changes reach and their rows after them: (touched, rows).

    ``current``: every input's snapshot now; ``changes``: the change data feed of each input
    that changed since the model's last batch; ``keys``: each input's table key; ``gold``:
    the model's table (None before its first batch).
    """
    additive = model.additive
    assert additive is not None, f"{model.spec.qualified_name} is not declared incremental"
    by, partition = additive.by, model.spec.partition_by or ""
    found = entities(changes, by)
    now = _of_entities(con, current, by, found)
    before = {
        n: rows_before(now[n], changes[n], keys[n], current[n].columns) if n in changes else now[n] for n in current
    }
    new = run_model(model.sql, now, con=con)
    old = run_model(model.sql, before, con=con)
    reached = pl.concat([pl.from_arrow(t.select([partition])) for t in (new, old)], how="vertical_relaxed")  # pyright: ignore[reportArgumentType]
    assert isinstance(reached, pl.DataFrame)
    touched = sorted(reached.get_column(partition).unique().to_list(), key=lambda v: (v is None, v))
    if not touched:
        return [], new.slice(0, 0)
    base = _partitions(gold, partition, touched, new.schema)
    return touched, _apply(model, base, new, old)


def _partitions(gold: pl.LazyFrame | None, partition: str, values: list[Any], schema: pa.Schema) -> pa.Table:
    """The gold rows of the partitions ``values`` (a NULL partition included)."""
    if gold is None:
        return schema.empty_table()
    present = [v for v in values if v is not None]
    wanted = pl.col(partition).is_in(present)
    if len(present) < len(values):
        wanted = wanted | pl.col(partition).is_null()
    return gold.filter(wanted).select(schema.names).collect().to_arrow()


def _apply(model: GoldModel, base: pa.Table, new: pa.Table, old: pa.Table) -> pa.Table:
    """``base`` plus ``new`` less ``old``, summed by the model's key; rows with a 0 count are dropped."""
    additive = model.additive
    assert additive is not None
    keys = [quote(k) for k in model.spec.keys]
    measures = [quote(m) for m in additive.measures]
    con = duckdb.connect()  # arithmetic over three small Arrow tables: no files
    try:
        con.execute("SET enable_external_access = false")
        for name, table in (("base", base), ("new", new), ("old", old)):
            con.register(f"__{name}_arrow", table)
        signed = " UNION ALL ".join(
            f"SELECT {', '.join(keys)}, {', '.join(f'{sign}{m} AS {m}' for m in measures)} FROM __{name}_arrow"
            for name, sign in (("base", ""), ("new", ""), ("old", "-"))
        )
        summed = con.execute(
            f"SELECT {', '.join(keys)}, {', '.join(f'sum({m}) AS {m}' for m in measures)} FROM ({signed}) GROUP BY ALL"
        ).pl()
    finally:
        con.close()
    count = additive.count
    others = [pl.col(m) != 0 for m in additive.measures if m != count]
    leftover = (pl.col(count) == 0) & pl.any_horizontal(others) if others else pl.lit(value=False)
    broken = summed.filter((pl.col(count) < 0) | leftover)
    if not broken.is_empty():
        example = broken.head(3).to_dicts()
        msg = (
            f"{model.spec.qualified_name} is declared incremental (by {additive.by}, count {count}) but its sums do "
            f"not add up for {broken.height} result rows, e.g. {example}: each result row must be a sum over "
            f"{additive.by} values of what that value's own rows contribute. Leave incremental out, or repair with a rebuild"
        )
        raise NotAdditive(msg)
    return summed.filter(pl.col(count) != 0).select(list(new.schema.names)).to_arrow()
