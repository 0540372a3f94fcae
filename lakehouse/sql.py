"""SQL text for delta-rs predicates, built from validated identifiers and escaped literals.

delta-rs takes merge and overwrite predicates as SQL text, with no bound parameters, so
values are rendered here and only here: strings are quoted with ``'`` doubled, numbers
and dates are typed, anything else is refused.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date, datetime
from decimal import Decimal

from lakehouse.specs import quote


def literal(value: object) -> str:
    """A SQL literal for ``value``; raises ``TypeError`` for types it does not know."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int | Decimal):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, datetime):
        return f"'{value.isoformat()}'"
    if isinstance(value, date):
        return f"'{value.isoformat()}'"
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    msg = f"cannot write {type(value).__name__} as a SQL literal"
    raise TypeError(msg)


def column(name: str, alias: str | None = None) -> str:
    """The quoted column ``name``, qualified by ``alias`` if given."""
    return f"{alias}.{quote(name)}" if alias else quote(name)


def in_list(name: str, values: Iterable[object], *, alias: str | None = None) -> str:
    """``col IN (...)``, with ``OR col IS NULL`` when ``None`` is among the values."""
    vals = list(values)
    non_null = sorted({v for v in vals if v is not None}, key=str)
    parts = []
    if non_null:
        parts.append(f"{column(name, alias)} IN ({', '.join(literal(v) for v in non_null)})")
    if any(v is None for v in vals):
        parts.append(f"{column(name, alias)} IS NULL")
    if not parts:
        return "FALSE"
    return parts[0] if len(parts) == 1 else "(" + " OR ".join(parts) + ")"


def between(name: str, low: object, high: object, *, alias: str | None = None) -> str:
    """SQL for ``low <= name <= high`` with the bounds as literals."""
    col = column(name, alias)
    return f"{col} >= {literal(low)} AND {col} <= {literal(high)}"


def keys_equal(keys: Sequence[str], left: str = "t", right: str = "s") -> str:
    """SQL that the key columns of ``left`` and ``right`` are equal."""
    return " AND ".join(f"{column(k, left)} = {column(k, right)}" for k in keys)


def lexicographic_greater(columns: Sequence[str], left: str = "s", right: str = "t") -> str:
    """``left`` sorts after ``right`` on ``columns`` compared in order."""
    first, *rest = columns
    gt = f"{column(first, left)} > {column(first, right)}"
    if not rest:
        return gt
    eq = f"{column(first, left)} = {column(first, right)}"
    return f"({gt} OR ({eq} AND {lexicographic_greater(rest, left, right)}))"
