"""The changes of an SCD2 input (``history: scd2``) as the spans of time whose version changed.

A gold model looks an SCD2 table up by time: the version of a key valid at an order's time
(``valid_from <= t AND (valid_to IS NULL OR t < valid_to)``, an inner or a left join), or its
current version (``is_current``). The change data feed of such a table names whole version
rows, and a version's pre-image spans all of its old validity: a late change at ``T`` of a
product valid since 2025 closes the old version at ``T``, and its pre-image (valid from 2025
to now) would name every sale of the product since 2025, although only the sales after ``T``
see another version.

:func:`changed_spans` turns the feed into what did change: per business key, the old and the
new versions (the current rows of the feed's keys, and the same rows as they were before the
feed), the instants where either starts or ends, and for each span between two of them the
version valid in the old history and in the new one. Where the two differ in a declared
column (the keys' and the ordering column's values aside: a record absorbed into its version
changes nothing a lookup sees), both versions are returned clipped to that span. A model run
over those rows reaches exactly the lookups whose version changed; the feed's other rows (a
catalogue delivered again, absorbed into the versions it repeats) reach none.
"""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl
import pyarrow as pa

from lakehouse.layers.gold.incremental import rows_before
from lakehouse.specs import HISTORY, TableSpec

VALID_FROM, VALID_TO, IS_CURRENT = HISTORY[:3]
_AT, _END, _PRESENT = "__at", "__end", "__present"


def _valid_at(spans: pl.DataFrame, versions: pl.DataFrame, keys: list[str], tag: str) -> pl.DataFrame:
    """``spans`` with the version of ``versions`` valid at each span's start: its columns suffixed ``tag``,
    and ``__present<tag>`` whether there is one."""
    right = versions.rename({c: c + tag for c in versions.columns if c not in keys})
    right = right.with_columns(pl.lit(value=True).alias(_PRESENT + tag)).sort(VALID_FROM + tag)
    found = spans.sort(_AT).join_asof(right, left_on=_AT, right_on=VALID_FROM + tag, by=keys, strategy="backward",
                                    check_sortedness=False)  # sorted by the instant: within each key too
    until = pl.col(VALID_TO + tag)
    valid = pl.col(_PRESENT + tag).fill_null(value=False) & (until.is_null() | (pl.col(_AT) < until))
    return found.with_columns(valid.alias(_PRESENT + tag))


def changed_spans(spec: TableSpec, changes: pl.DataFrame, now: pa.Table, columns: Sequence[str]) -> pl.DataFrame:
    """The old and new versions of every span of time whose version the feed ``changes``, clipped to it.

    ``changes``: the table's change data feed (``_change_type``, ``_commit_version`` and the
    model's ``columns``); ``now``: the table's current rows of the keys the feed names (the
    model's ``columns``). Returns rows of the model's ``columns``.
    """
    keys = list(spec.keys)
    cols = list(columns)
    identity = [*keys, VALID_FROM]
    new = pl.from_arrow(now)
    assert isinstance(new, pl.DataFrame)
    changes = changes.with_columns(pl.col(c).cast(new.schema[c]) for c in cols)  # DuckDB's Etc/UTC, the feed's UTC
    old = pl.from_arrow(rows_before(new.to_arrow(), changes, identity, cols))
    assert isinstance(old, pl.DataFrame)
    new, old = new.select(cols), old.select(cols).cast(new.select(cols).schema)
    compared = [c for c in cols if c not in (*keys, *HISTORY, spec.order_by)]
    both = pl.concat([old, new])
    starts = pl.concat([
        both.select([*keys, pl.col(VALID_FROM).alias(_AT)]),
        both.select([*keys, pl.col(VALID_TO).alias(_AT)]).drop_nulls(_AT),
    ]).unique().sort([*keys, _AT])
    spans = starts.with_columns(pl.col(_AT).shift(-1).over(keys).alias(_END))
    spans = _valid_at(spans, old, keys, "__old")
    spans = _valid_at(spans, new, keys, "__new")
    differ = pl.col(_PRESENT + "__old") != pl.col(_PRESENT + "__new")
    for c in compared:
        differ = differ | (pl.col(_PRESENT + "__old") & pl.col(c + "__old").ne_missing(pl.col(c + "__new")))
    changed = spans.filter(differ)
    out = []
    for tag in ("__old", "__new"):
        side = changed.filter(pl.col(_PRESENT + tag)).select([
            *(pl.col(c) if c in keys else pl.col(c + tag).alias(c) for c in cols if c not in (VALID_FROM, VALID_TO)),
            pl.col(_AT).alias(VALID_FROM), pl.col(_END).alias(VALID_TO),
        ])
        out.append(side.select(cols))
    return pl.concat(out).cast(new.schema)
