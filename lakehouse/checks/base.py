"""What a kind of check is, and the registry that holds the kinds.

A kind (:class:`CheckKind`) is one class that says everything the engine knows about it:

- its declaration: the YAML key that names it, the type of that key's value, its own
  options, and their validation (:meth:`CheckKind.validate`, :meth:`CheckKind.build`);
- its row rule, for row-level kinds: a Polars expression of the rows that break it and of
  the reason they are quarantined with (:meth:`CheckKind.rule`);
- its fragment of the Soda contract that gates a batch (:meth:`CheckKind.soda`) and how
  Soda's result maps back onto it (:meth:`CheckKind.measure`);
- its threshold as a report shows it (:meth:`CheckKind.threshold_text`).

The declaration, the quarantine rules and the gate ask the registry (:func:`kind_of`), so a
new kind is one module that subclasses :class:`CheckKind` and calls :func:`register`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import polars as pl
import pyarrow as pa

from lakehouse.specs import Check, Column, TableSpec

References = Mapping[str, pl.Series]
"""The keys each ``reference`` check's value must be one of, by check name."""

DATA_SOURCE = "lake"
"""The Soda data source a gate's batch and its lookups are shown in."""
SCHEMA = "main"


@dataclass
class Declared:
    """What :meth:`CheckKind.build` may look at: the table's columns, the pipeline's
    datasets (None for a gold model's checks) and where to report a problem."""

    columns: Mapping[str, Column]
    where: str
    problems: Any
    """Has ``add(where, message)`` (:class:`lakehouse.declaration.errors.Problems`)."""
    datasets: Mapping[str, Any] | None = None
    """The pipeline's declared datasets by name (``DatasetDecl``), for checks that name one."""

    def problem(self, message: str, *, at: str = "") -> None:
        """Record a problem of the check being built, at ``at`` under its place in the file."""
        self.problems.add(self.where + at, message)


@dataclass
class Contract:
    """What :meth:`CheckKind.soda` may look at while a gate's contract is written."""

    spec: TableSpec
    dataset: str
    """The Soda dataset of the batch, ``<data source>/<schema>/<table>``."""
    strict: bool
    """True for the silver→gold gate: every percent threshold is 0."""

    def limit(self, check: Check) -> float:
        """The percent of rows that may fail ``check`` in this gate."""
        return 0.0 if self.strict else check.max_percent

    def percent_threshold(self, check: Check) -> dict[str, Any]:
        """The Soda threshold of a percent metric: at most the check's ``max_percent``."""
        return threshold(check, metric="percent", must_be_less_than_or_equal=number(self.limit(check)))


def number(x: float) -> int | float:
    """1.0 → 1 so the YAML reads as written in the declaration."""
    return int(x) if float(x).is_integer() else x


def threshold(check: Check, **comparison: Any) -> dict[str, Any]:
    """A Soda threshold, with the check's level when it only warns."""
    return {**comparison, **({"level": "warn"} if check.level == "warn" else {})}


def measured(result: Any) -> float | None:
    """The number a Soda check result measured, or None."""
    value = getattr(result, "threshold_value", None)
    return float(value) if isinstance(value, int | float) else None


class CheckKind:
    """A kind of check. Subclass it, set the class attributes, override the hooks, register it.

    Example (a whole kind; see ``tests/unit/test_check_registry.py``)::

        @register
        class MaxLength(CheckKind):
            name = "max_length"
            options = {"length": (int | None, None)}
            row_level = percent = True

            def rule(self, check, references):
                col = pl.col(check.target)
                return col.str.len_chars() > check.option("length"), pl.lit(f"{check.column} too long")

            def soda(self, check, contract):
                return [{"invalid": {"name": check.name, "valid_max_length": check.option("length"),
                                     "threshold": contract.percent_threshold(check)}}]
    """

    name: ClassVar[str]
    """The YAML key that names the kind in a check (``- missing: order_id``)."""
    value_type: ClassVar[Any] = str
    """The type of that key's value: a column name for most kinds."""
    options: ClassVar[Mapping[str, tuple[Any, Any]]] = {}
    """The kind's own further YAML fields: name → (type, default)."""
    exclusive: ClassVar[tuple[str, ...]] = ()
    """Options that are an error on a check of another kind."""
    exclusive_message: ClassVar[str] = ""
    """What that error says (``'max_age' belongs to a freshness check``)."""
    row_level: ClassVar[bool] = False
    """It rejects rows (quarantine, :meth:`rule`); its Soda check is a column check."""
    percent: ClassVar[bool] = False
    """Soda measures it as a percent of rows, bounded by ``max_percent`` (none of no rows)."""
    loose_gate: ClassVar[bool] = True
    """Part of the bronze→silver gate (a raw batch, ``max_percent`` applies)."""
    strict_gate: ClassVar[bool] = True
    """Part of the silver→gold gate (a deduplicated batch, any failing row fails)."""
    datasets_only: ClassVar[bool] = False
    """Declared on datasets only: it is checked where rows enter silver."""
    rejects_nulls: ClassVar[bool] = False
    """Its row rule rejects a null (so ``nullable: false`` need not say so again)."""
    order: ClassVar[int] = 100
    """Where the kind comes in lists of kinds (messages, docs): the built-ins first."""

    # --- the declaration ------------------------------------------------------------------

    @classmethod
    def attribute(cls) -> str:
        """The declaration model's attribute of the kind's key (``schema_`` for ``schema``)."""
        from pydantic import BaseModel

        return cls.name + "_" if hasattr(BaseModel, cls.name) else cls.name

    def value(self, decl: Any) -> Any:
        """The value of the kind's key in a declared check."""
        return getattr(decl, self.attribute())

    def validate(self, decl: Any) -> None:
        """Raise ``ValueError`` saying what is wrong with the kind's own options."""

    def columns(self, decl: Any) -> list[str]:
        """The columns a declared check names (each must be a column of its table)."""
        return [self.value(decl)]

    def build(self, decl: Any, declared: Declared) -> Check | None:
        """The :class:`~lakehouse.specs.Check` of a declared one, or None after reporting a problem."""
        columns = self.columns(decl)
        return Check(
            self.name,
            column=columns[0] if len(columns) == 1 else None,
            columns=tuple(columns) if len(columns) > 1 else (),
            max_percent=decl.max_percent,
            level=decl.level,
            options=tuple((option, getattr(decl, option)) for option in self.options),
        )

    # --- quarantine -----------------------------------------------------------------------

    def rule(self, check: Check, references: References) -> tuple[pl.Expr, pl.Expr] | None:
        """(violated, reason) as expressions over the typed rows; None for batch-level kinds."""
        return None

    # --- the gate -------------------------------------------------------------------------

    def gated(self, strict: bool) -> bool:
        """Whether a failure of the check blocks the batch at this gate (``strict``: silver→gold)."""
        return self.strict_gate if strict else self.loose_gate

    def soda(self, check: Check, contract: Contract) -> list[dict[str, Any]]:
        """The check's Soda v4 contract entries: one column check for a row-level kind
        (written under its column), else the dataset-level checks."""
        msg = f"check kind {self.name} has no Soda contract fragment"
        raise NotImplementedError(msg)

    def lookups(self, check: Check, references: References) -> dict[str, pa.Table]:
        """Tables the gate shows Soda besides the batch (a reference check's keys), by name."""
        return {}

    def measure(self, check: Check, results: Mapping[str, Any], *, empty: bool) -> tuple[bool, float | None]:
        """(passed, value) from Soda's results by check name; a check not evaluated fails."""
        result = results.get(check.name)
        if result is None:
            return False, None
        # a percentage of no rows is not a measurement (Soda reports 0)
        return bool(result.is_passed), None if empty and self.percent else measured(result)

    def threshold_text(self, check: Check, strict: bool) -> str:
        """The threshold as reports show it: ``<= 10%``, ``>= 1 rows``."""
        if self.percent:
            return f"<= {0.0 if strict else check.max_percent:g}%"
        msg = f"check kind {self.name} has no threshold text"
        raise NotImplementedError(msg)


_REGISTRY: dict[str, CheckKind] = {}
_version = [0]


def register(kind: type[CheckKind]) -> type[CheckKind]:
    """Add a kind to the registry (a class decorator); a kind of the same name is replaced."""
    _REGISTRY[kind.name] = kind()
    _version[0] += 1
    return kind


def unregister(name: str) -> None:
    """Remove a kind (a test's throwaway kind)."""
    if _REGISTRY.pop(name, None) is not None:
        _version[0] += 1


def kinds() -> tuple[CheckKind, ...]:
    """Every registered kind: by :attr:`CheckKind.order`, then in registration order."""
    return tuple(sorted(_REGISTRY.values(), key=lambda k: k.order))


def version() -> int:
    """Changes whenever the registry does (the declaration's models are rebuilt then)."""
    return _version[0]


def kind_of(check: Check | str) -> CheckKind:
    """The kind of a check (or of a kind's name); ``KeyError`` naming the known kinds."""
    name = check if isinstance(check, str) else check.kind
    try:
        return _REGISTRY[name]
    except KeyError:
        msg = f"unknown check kind {name!r} (known: {', '.join(_REGISTRY)})"
        raise KeyError(msg) from None
