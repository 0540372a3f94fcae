"""Quality gates: a real Soda v4 contract scan over one batch, derived from its table spec.

The batch (an Arrow table or a Polars frame) is registered as a view in a fresh in-memory
DuckDB, the contract :func:`build_contract` derives from ``spec.checks`` is verified against
it with soda-core 4.28 (soda-duckdb), and each Soda check result is mapped back onto the
:class:`~lakehouse.specs.Check` it came from. The result is a :class:`GateResult`; the
caller decides whether to raise, publish or alert (STYLE.md, shape 10).

``strict=False`` is the bronze→silver gate: up to ``Check.max_percent`` percent of the rows
may fail a row-level check (those rows are quarantined by the row-level rules) and the
duplicate check is left out, because a raw batch legitimately holds several versions of one
key. ``strict=True`` is the silver→gold gate: any failing row fails.

How each kind of check is written in the contract (Soda v4 syntax):

- ``missing`` → column check ``missing`` with
  ``threshold: {metric: percent, must_be_less_than_or_equal: <max_percent>}``;
- ``valid_values`` → column check ``invalid`` with ``valid_values: [...]``, and ``range`` →
  ``invalid`` with ``valid_min`` / ``valid_max``, both with the same percent threshold
  (Soda counts NULLs as missing, never as invalid);
- ``duplicate`` → dataset check ``duplicate`` with ``columns: [...]``, ``must_be: 0``
  duplicate rows. Soda hashes the key tuple with NULL as a sentinel value, so two rows
  whose key is NULL count as duplicates;
- ``reference`` → column check ``invalid`` with ``valid_reference_data`` naming a view
  ``ref_<dataset>_<column>`` of the keys the row-level rule looked up (given to
  :func:`run_gate`), with the same percent threshold;
- ``freshness`` → dataset check ``freshness`` in minutes, measured against ``now`` (the
  window's end, passed to Soda as the data timestamp), not the clock;
- ``row_count`` → ``row_count`` with ``must_be_greater_than_or_equal: <min_rows>``;
- ``schema`` → ``schema`` (names and types of every declared column, extra columns fail,
  column order is free), plus a ``failed_rows`` check named ``schema(data_types)``.

What Soda cannot express, and how it is handled (nothing is evaluated outside the scan):

- *Exact data types.* soda-duckdb treats every integer and decimal type name as synonyms
  (and float/double/real), so a BIGINT column arriving as INTEGER or DECIMAL(18,3) passes
  its schema check. The contract therefore also carries a Soda ``failed_rows`` query over
  ``information_schema.columns`` that compares the DuckDB type of each declared column with
  :meth:`~lakehouse.specs.Column.sql_type` (case and spaces ignored). Both checks are
  reported as the spec's one ``schema`` outcome; its value is the number of differences.
- *Checks on a column the batch lacks.* Soda computes all metrics in one query, so one
  absent column would leave every check unevaluated. :func:`run_gate` leaves those checks
  out of the contract (the column stays declared, so the schema check fails on it) and
  reports them failed, with no value: a check that cannot be measured does not pass.
- *Levels of schema checks.* Soda's schema check always reports FAILED whatever its level;
  the level of the spec's check is applied when the results are mapped.

Lineage columns (names starting with ``_``) are not shown to Soda; any other column that
is not declared is, and fails the schema check. A check that Soda did not evaluate (a
query error) fails, and Soda's errors are logged as a warning. Soda's own INFO and DEBUG
records are re-logged at DEBUG on ``lakehouse.gates.soda`` instead of reaching the host's
handlers; its warnings and errors propagate as usual (Soda counts its errors from them).

Example::

    result = run_gate(frame, ORDERS, stage="bronze_to_silver", strict=False)
    if not result.passed:
        raise GateFailed(result.summary(), table=result.table, failed_checks=result.failed_checks())
"""

from __future__ import annotations

import logging
import os
import threading
import warnings
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from typing import Any

import duckdb
import polars as pl
import pyarrow as pa
import yaml

from lakehouse.errors import GateFailed
from lakehouse.specs import Check, TableSpec

# before anything imports soda (it is imported on first use, see _soda)
os.environ.setdefault("SODA_CORE_TELEMETRY_ENABLED", "false")

log = logging.getLogger(__name__)
_soda_log = logging.getLogger(f"{__name__}.soda")

DATA_SOURCE = "lake"
VIEW = "batch"
SCHEMA = "main"
DATASET = f"{DATA_SOURCE}/{SCHEMA}/{VIEW}"
TYPES_CHECK = "schema(data_types)"
"""Name of the Soda check that compares exact data types; reported as part of ``schema``."""

_PERCENT_KINDS = ("missing", "valid_values", "range", "reference")
_NEGATED = {"<=": ">", ">=": "<", "=": "!="}


@dataclass(frozen=True)
class CheckOutcome:
    """One check of a gate as Soda measured it.

    ``value`` is a percent for ``missing``/``valid_values``/``range`` (None for an empty
    batch), the duplicate row count, the row count, or the number of schema differences;
    None when the check could not be measured.
    """

    name: str
    level: str
    passed: bool
    value: float | None
    threshold: str


@dataclass(frozen=True)
class GateResult:
    """The outcome of one gate: it passed unless a fail-level check failed."""

    table: str
    stage: str
    passed: bool
    checks: tuple[CheckOutcome, ...]
    rows: int

    def failed_checks(self) -> list[str]:
        """Names of the fail-level checks that failed, in the order of the spec."""
        return [c.name for c in self.checks if not c.passed and c.level == "fail"]

    def warnings(self) -> list[str]:
        """Names of the warn-level checks that failed (they never block)."""
        return [c.name for c in self.checks if not c.passed and c.level == "warn"]

    def summary(self) -> str:
        """One line: table, stage and what failed with its measured value.

        Example: ``silver.orders bronze_to_silver: FAILED missing(order_id) (60% > 10%)``.
        """
        warned = [f"{c.name} ({_violation(c)})" for c in self.checks if not c.passed and c.level == "warn"]
        tail = f"; warnings: {', '.join(warned)}" if warned else ""
        if self.passed:
            return f"{self.table} {self.stage}: passed {len(self.checks)} checks{tail}"
        failed = [f"{c.name} ({_violation(c)})" for c in self.checks if not c.passed and c.level == "fail"]
        return f"{self.table} {self.stage}: FAILED {', '.join(failed)}{tail}"


def blocking_error(results: list[GateResult]) -> GateFailed | None:
    """The error that blocks a promotion, naming every failing check, or None if all passed."""
    failed = [r for r in results if not r.passed]
    if not failed:
        return None
    return GateFailed(
        "promotion blocked: " + "; ".join(r.summary() for r in failed),
        table=", ".join(r.table for r in failed),
        failed_checks=[c for r in failed for c in r.failed_checks()],
    )


def build_contract(spec: TableSpec, *, dataset: str, strict: bool) -> str:
    """The Soda v4 contract YAML that gates a batch of ``spec``'s table.

    Args:
        spec: the table whose ``checks`` (and columns, for the schema check) are written.
        dataset: the Soda dataset, ``<data source>/<schema>/<table>`` such as
            ``lake/main/batch``.
        strict: True for the silver→gold gate (every percent threshold is 0 and the
            duplicate check is included), False for the bronze→silver gate.

    Example: ``build_contract(ORDERS, dataset="lake/main/orders", strict=False)``.
    """
    return _contract(spec, dataset=dataset, strict=strict, present=spec.column_names)


def run_gate(
    batch: pa.Table | pl.DataFrame,
    spec: TableSpec,
    *,
    stage: str,
    strict: bool,
    references: Mapping[str, pl.Series] | None = None,
    now: datetime | None = None,
) -> GateResult:
    """Verify ``spec``'s Soda contract on ``batch`` and report every check.

    Args:
        batch: the rows to gate, with the spec's columns (typed as
            :meth:`~lakehouse.specs.Column.arrow_type`) and possibly lineage columns whose
            names start with ``_`` (ignored).
        spec: the table the batch belongs to.
        stage: ``"bronze_to_silver"`` or ``"silver_to_gold"``; recorded in the result.
        strict: see :func:`build_contract`.
        references: the keys each ``reference`` check looks up, by check name (the same
            values the row-level rule used); shown to Soda as a table of their own.
        now: the time ``freshness`` checks measure against (the window's end); default:
            the clock.

    Example: ``run_gate(frame, ORDER_ITEMS, stage="silver_to_gold", strict=True).passed``.
    """
    names = batch.columns if isinstance(batch, pl.DataFrame) else batch.column_names
    present = [c for c in spec.column_names if c in names]
    undeclared = [c for c in names if c not in spec.column_names and not c.startswith("_")]
    shown = present + undeclared
    view = batch.select(shown).to_arrow() if isinstance(batch, pl.DataFrame) else batch.select(shown)
    rows = batch.height if isinstance(batch, pl.DataFrame) else batch.num_rows
    contract = _contract(spec, dataset=DATASET, strict=strict, present=present)
    # DuckDB cannot show a table without columns: with none to scan, nothing is measured
    lookups = {
        _reference_view(c): pa.table({c.ref_column: (references or {})[c.name].cast(pl.String).to_arrow()})
        for c in spec.checks
        if c.kind == "reference" and _gated(c, strict) and c.name in (references or {})
    }
    missing = [c.name for c in spec.checks if c.kind == "reference" and _gated(c, strict) and c.name not in (references or {})]
    if missing:
        raise ValueError(f"{spec.qualified_name}: no reference keys given for {', '.join(missing)}")
    results = _verify(contract, view, spec, lookups, now) if shown else {}
    absent = set(spec.column_names) - set(present)
    outcomes = tuple(
        _outcome(check, results, strict=strict, empty=rows == 0, absent=absent)
        for check in spec.checks
        if _gated(check, strict)
    )
    blocked = any(not o.passed and o.level == "fail" for o in outcomes)
    return GateResult(spec.qualified_name, stage, not blocked, outcomes, rows)


# --- the contract -------------------------------------------------------------------------


def _gated(check: Check, strict: bool) -> bool:
    """Whether a check is part of this gate.

    Duplicates are checked only in strict (deduplicated) batches. References and freshness
    are checked where rows enter silver (they were true of every promoted row then, and
    keys are never deleted from silver), so not again in the strict gate.
    """
    if strict:
        return check.kind not in ("reference", "freshness")
    return check.kind != "duplicate"


def _reference_view(check: Check) -> str:
    """The DuckDB view that holds the keys a ``reference`` check looks up."""
    return f"ref_{check.ref_dataset}_{check.ref_column}"


def _columns_of(check: Check) -> tuple[str, ...]:
    return check.columns or ((check.column,) if check.column else ())


def _limit(check: Check, strict: bool) -> float:
    return 0.0 if strict else check.max_percent


def _number(x: float) -> int | float:
    """1.0 → 1 so the YAML reads as written in the declaration."""
    return int(x) if float(x).is_integer() else x


def _threshold(check: Check, **comparison: Any) -> dict[str, Any]:
    return {**comparison, **({"level": "warn"} if check.level == "warn" else {})}


def _column_check(check: Check, strict: bool) -> dict[str, Any]:
    threshold = _threshold(
        check, metric="percent", must_be_less_than_or_equal=_number(_limit(check, strict))
    )
    if check.kind == "missing":
        return {"missing": {"name": check.name, "threshold": threshold}}
    body: dict[str, Any] = {"name": check.name}
    if check.kind == "valid_values":
        body["valid_values"] = list(check.values)
    elif check.kind == "reference":
        body["valid_reference_data"] = {
            "dataset": f"{DATA_SOURCE}/{SCHEMA}/{_reference_view(check)}",
            "column": check.ref_column,
        }
    else:
        if check.min is not None:
            body["valid_min"] = _number(check.min)
        if check.max is not None:
            body["valid_max"] = _number(check.max)
    return {"invalid": {**body, "threshold": threshold}}


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _types_query(spec: TableSpec, schema: str, table: str) -> str:
    """Declared columns whose DuckDB type differs from the declared one (case and spaces aside)."""
    expected = ",\n".join(f"  ({_literal(c.name)}, {_literal(c.sql_type())})" for c in spec.columns)
    return (
        "SELECT c.column_name, c.data_type AS actual, e.data_type AS expected\n"
        "FROM information_schema.columns AS c\n"
        f"JOIN (VALUES\n{expected}\n) AS e(column_name, data_type) USING (column_name)\n"
        f"WHERE c.table_schema = {_literal(schema)} AND c.table_name = {_literal(table)}\n"
        "  AND upper(replace(c.data_type, ' ', '')) <> upper(replace(e.data_type, ' ', ''))\n"
    )


def _dataset_check(check: Check, spec: TableSpec, dataset: str) -> list[dict[str, Any]]:
    if check.kind == "duplicate":
        threshold = _threshold(check, must_be=0)
        return [{"duplicate": {"name": check.name, "columns": list(check.columns), "threshold": threshold}}]
    if check.kind == "row_count":
        threshold = _threshold(check, must_be_greater_than_or_equal=check.min_rows)
        return [{"row_count": {"name": check.name, "threshold": threshold}}]
    if check.kind == "freshness":
        minutes = (check.max_age or timedelta(0)).total_seconds() / 60
        threshold = _threshold(check, unit="minute", must_be_less_than_or_equal=_number(minutes))
        return [{"freshness": {"name": check.name, "column": check.column, "threshold": threshold}}]
    parts = dataset.split("/")
    if len(parts) < 3:
        raise ValueError(f"dataset {dataset!r} is not <data source>/<schema>/<table>")
    return [
        {"schema": {"name": check.name, "allow_other_column_order": True}},
        {
            "failed_rows": {
                "name": TYPES_CHECK,
                "query": _types_query(spec, parts[-2], parts[-1]),
                "threshold": _threshold(check, must_be=0),
            }
        },
    ]


def _contract(spec: TableSpec, *, dataset: str, strict: bool, present: Collection[str]) -> str:
    """The contract, leaving out the checks on columns that are not ``present``."""
    checks = [c for c in spec.checks if _gated(c, strict) and set(_columns_of(c)) <= set(present)]
    columns: list[dict[str, Any]] = []
    for col in spec.columns:
        entry: dict[str, Any] = {"name": col.name}
        if dec := col.decimal:
            entry |= {"data_type": "decimal", "numeric_precision": dec[0], "numeric_scale": dec[1]}
        else:
            entry["data_type"] = col.sql_type().lower()
        own = [_column_check(c, strict) for c in checks if c.row_level and c.column == col.name]
        if own:
            entry["checks"] = own
        columns.append(entry)
    contract: dict[str, Any] = {"dataset": dataset, "columns": columns}
    dataset_checks = [d for c in checks if not c.row_level for d in _dataset_check(c, spec, dataset)]
    if dataset_checks:  # Soda rejects an empty 'checks' list
        contract["checks"] = dataset_checks
    return yaml.dump(contract, Dumper=_ContractDumper, sort_keys=False, width=100)


class _ContractDumper(yaml.SafeDumper):
    """Safe YAML with multi-line strings (the types query) written as literal blocks."""


def _str_presenter(dumper: yaml.SafeDumper, data: str) -> yaml.ScalarNode:
    style = "|" if "\n" in data else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


_ContractDumper.add_representer(str, _str_presenter)


# --- the scan -----------------------------------------------------------------------------


class _SodaToDebug(logging.Filter):
    """Re-log Soda's INFO/DEBUG chatter at DEBUG here; let its warnings and errors through."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.WARNING:
            return True
        if _soda_log.isEnabledFor(logging.DEBUG):
            _soda_log.debug("%s", record.getMessage())
        return False


_soda_lock = threading.Lock()


@cache
def _soda() -> tuple[Any, Any, Any]:
    """Import Soda on first use (about a second) and quiet its logger."""
    with _soda_lock, warnings.catch_warnings():
        # soda_core.common.sql_ast warns about a UNION_ALL it defines, on import
        warnings.simplefilter("ignore", DeprecationWarning)
        from soda_core.common.yaml import ContractYamlSource
        from soda_core.contracts.contract_verification import ContractVerificationSession
        from soda_duckdb.common.data_sources.duckdb_data_source import DuckDBDataSourceImpl
    soda_logger = logging.getLogger("soda")
    if not any(isinstance(f, _SodaToDebug) for f in soda_logger.filters):
        soda_logger.addFilter(_SodaToDebug())
    return ContractYamlSource, ContractVerificationSession, DuckDBDataSourceImpl


def _verify(
    contract: str, view: pa.Table, spec: TableSpec, lookups: Mapping[str, pa.Table], now: datetime | None
) -> dict[str, Any]:
    """Run the contract over ``view`` in a fresh in-memory DuckDB; Soda's results by check name."""
    contract_source, session_class, duckdb_source = _soda()
    con = duckdb.connect()
    try:
        con.register(VIEW, view)
        for name, keys in lookups.items():
            con.register(name, keys)
        session = session_class.execute(
            contract_yaml_sources=[contract_source.from_str(contract)],
            data_source_impls=[duckdb_source.from_existing_cursor(con, name=DATA_SOURCE)],
            data_timestamp=now.isoformat() if now else None,
        )
    finally:
        con.close()
    if session.has_errors:
        log.warning("Soda reported errors gating %s: %s", spec.qualified_name, session.get_errors_str())
    return {
        result.check.name: result
        for verification in session.contract_verification_results
        for result in verification.check_results
    }


# --- mapping Soda's results ---------------------------------------------------------------


def _threshold_text(check: Check, strict: bool) -> str:
    if check.kind in _PERCENT_KINDS:
        return f"<= {_limit(check, strict):g}%"
    if check.kind == "row_count":
        return f">= {check.min_rows} rows"
    if check.kind == "freshness":
        return f"<= {(check.max_age or timedelta(0)).total_seconds() / 60:g} min"
    if check.kind == "duplicate":
        return "= 0 duplicate rows"
    return "= 0 differences"


def _measured(result: Any) -> float | None:
    value = getattr(result, "threshold_value", None)
    return float(value) if isinstance(value, int | float) else None


def _schema_value(schema: Any, types: Any) -> float | None:
    """Missing plus undeclared columns (Soda's schema check) plus exact type differences."""
    type_differences = _measured(types)
    if type_differences is None:
        return None
    missing = getattr(schema, "expected_column_names_not_actual", None)
    extra = getattr(schema, "actual_column_names_not_expected", None)
    if missing is None or extra is None:
        return None
    return float(len(missing) + len(extra)) + type_differences


def _outcome(
    check: Check, results: Mapping[str, Any], *, strict: bool, empty: bool, absent: Collection[str]
) -> CheckOutcome:
    """Map the Soda result(s) of one spec check; unmeasured checks fail."""
    threshold = _threshold_text(check, strict)
    if set(_columns_of(check)) & set(absent):
        return CheckOutcome(check.name, check.level, False, None, threshold)
    result = results.get(check.name)
    if check.kind == "schema":
        types = results.get(TYPES_CHECK)
        passed = all(r is not None and r.is_passed for r in (result, types))
        return CheckOutcome(check.name, check.level, passed, _schema_value(result, types), threshold)
    if result is None:
        return CheckOutcome(check.name, check.level, False, None, threshold)
    # a percentage of no rows is not a measurement (Soda reports 0)
    value = None if empty and check.kind in _PERCENT_KINDS else _measured(result)
    return CheckOutcome(check.name, check.level, bool(result.is_passed), value, threshold)


def _violation(outcome: CheckOutcome) -> str:
    """``60% > 10%`` from value 60 and threshold ``<= 10%``."""
    op, _, bound = outcome.threshold.partition(" ")
    if outcome.value is None:
        return f"not measured, expected {outcome.threshold}"
    unit = "%" if bound.endswith("%") else " min" if bound.endswith(" min") else ""
    return f"{outcome.value:g}{unit} {_NEGATED.get(op, 'vs')} {bound}"
