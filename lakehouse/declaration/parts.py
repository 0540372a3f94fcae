"""The parts a dataset and a gold model share: a column, a check, the z-order columns."""

from __future__ import annotations

import re
from typing import Any

from lakehouse import checks
from lakehouse.declaration.errors import Problems
from lakehouse.declaration.schema import ColumnDecl
from lakehouse.specs import HISTORY, NUMERIC, SIMPLE_TYPES, Check, Column, is_identifier

_DECIMAL = re.compile(r"^decimal\(\s*(\d+)\s*,\s*(\d+)\s*\)$")


def column(
    name: str, decl: str | ColumnDecl, where: str, problems: Problems, *, strings_as_numbers: bool = False
) -> Column | None:
    """The declared column ``name`` as a :class:`Column`, or None after adding its problems."""
    if not is_identifier(name):
        problems.add(where, f"{name!r} is not a valid column name (letters, digits and _, not starting with a digit)")
        return None
    d = decl if isinstance(decl, ColumnDecl) else ColumnDecl(type=decl)
    dtype = d.type.strip().lower().replace(" ", "")
    m = _DECIMAL.match(dtype)
    if m:
        p, s = int(m.group(1)), int(m.group(2))
        if not 1 <= p <= 38 or s > p:
            problems.add(where + ".type", f"decimal({p},{s}) is out of range: precision 1–38, scale ≤ precision")
            return None
        dtype = f"decimal({p},{s})"
    elif dtype not in SIMPLE_TYPES:
        problems.add(where + ".type", f"unknown type {d.type!r}: expected one of {', '.join(SIMPLE_TYPES)} or decimal(p,s)")
        return None
    as_numbers = strings_as_numbers if d.strings_as_numbers is None else d.strings_as_numbers
    if d.strings_as_numbers and dtype not in ("int64", "float64"):
        problems.add(where + ".strings_as_numbers", f"applies to int64 and float64 columns; {name} is {dtype}")
        return None
    return Column(
        name, dtype, nullable=d.nullable, derive=d.derive,
        strings_as_numbers=as_numbers and dtype in NUMERIC,
    )


def check(
    decl: Any, columns: dict[str, Column], where: str, problems: Problems,
    datasets: dict[str, Any] | None = None,
) -> Check | None:
    """The check of a declared one, by its kind (:mod:`lakehouse.checks`); None after a problem."""
    for col in decl.columns():
        if col not in columns:
            problems.add(where, f"{col!r} is not a column (columns: {', '.join(columns)})")
            return None
    kind = checks.kind_of(decl.kind)
    if kind.datasets_only and datasets is None:
        problems.add(where, f"{kind.name} checks belong to datasets: they are checked where rows enter silver")
        return None
    return kind.build(decl, checks.Declared(columns, where, problems, datasets))


def z_order(
    zorder: list[str] | str, columns: Any, partition_by: str | None, table: str, where: str, problems: Problems
) -> tuple[str, ...]:
    """The declared z-order columns, each a column of ``table`` other than its partition column."""
    zorder = [zorder] if isinstance(zorder, str) else zorder
    for col in zorder:
        if col not in columns:
            problems.add(where, f"{col!r} is not a column of {table} (columns: {', '.join(columns)})")
        elif col == partition_by:
            problems.add(where, f"{col!r} is the partition column: z-order by columns inside a partition")
    if len(set(zorder)) != len(zorder):
        problems.add(where, f"lists a column twice: {', '.join(zorder)}")
    return tuple(zorder)


def tracked_columns(decl: Any, columns: dict[str, Column], table: str, where: str, problems: Problems) -> tuple[str, ...] | None:
    """The ``tracked`` columns of an SCD2 dataset (None for SCD1), after adding every problem with them."""
    if decl.history != "scd2":
        if decl.tracked is not None:
            problems.add(where + ".tracked", f"tracked columns belong to history: scd2; {table} is history: {decl.history}")
        return None
    if decl.order_by is None:
        problems.add(where + ".history", f"history: scd2 orders {table}'s versions by order_by: declare order_by (a timestamp, date or int64 column)")
    for name in HISTORY:
        if name in decl.columns:
            problems.add(f"{where}.columns.{name}", f"{name!r} is a column history: scd2 adds to {table}: rename the declared column")
    tracked = decl.tracked or []
    if not tracked:
        problems.add(where + ".tracked", f"history: scd2 needs tracked: [columns], the columns whose change opens a new version of {table}")
    identity = {*decl.key_columns(), *([decl.order_by] if decl.order_by else [])}
    for name in tracked:
        if name not in columns and name not in decl.columns:
            problems.add(where + ".tracked", f"{name!r} is not a column of {table} (columns: {', '.join(decl.columns)})")
        elif name in identity:
            problems.add(where + ".tracked", f"{name!r} is the key or the ordering column of {table}: every version has its own; track the other columns")
    if len(set(tracked)) != len(tracked):
        problems.add(where + ".tracked", f"lists a column twice: {', '.join(tracked)}")
    return tuple(tracked)
