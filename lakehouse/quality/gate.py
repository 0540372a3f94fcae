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

How each kind of check is written in the contract (Soda v4 syntax; each by its module of
:mod:`lakehouse.checks`, :meth:`~lakehouse.checks.CheckKind.soda`):

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
records are re-logged at DEBUG on ``lakehouse.quality.soda`` instead of reaching the host's
handlers; its warnings and errors propagate as usual (Soda counts its errors from them).

Example::

    result = run_gate(frame, ORDERS, stage="bronze_to_silver", strict=False)
    if not result.passed:
        raise GateFailed(result.summary(), table=result.table, failed_checks=result.failed_checks())
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from datetime import datetime
from typing import Any

import polars as pl
import pyarrow as pa

from lakehouse import checks
from lakehouse.quality.contract import contract_yaml, gated
from lakehouse.quality.results import CheckOutcome, GateResult
from lakehouse.quality.soda import DATASET, verify
from lakehouse.specs import Check, TableSpec


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
    contract = contract_yaml(spec, dataset=DATASET, strict=strict, present=present)
    lookups: dict[str, pa.Table] = {}
    for check in spec.checks:
        if gated(check, strict):
            try:
                lookups |= checks.kind_of(check).lookups(check, references or {})
            except ValueError as exc:
                msg = f"{spec.qualified_name}: {exc}"
                raise ValueError(msg) from None
    # DuckDB cannot show a table without columns: with none to scan, nothing is measured
    results = verify(contract, view, spec, lookups, now) if shown else {}
    absent = set(spec.column_names) - set(present)
    outcomes = tuple(
        _outcome(check, results, strict=strict, empty=rows == 0, absent=absent)
        for check in spec.checks
        if gated(check, strict)
    )
    blocked = any(not o.passed and o.level == "fail" for o in outcomes)
    return GateResult(spec.qualified_name, stage, not blocked, outcomes, rows)


def _outcome(
    check: Check, results: Mapping[str, Any], *, strict: bool, empty: bool, absent: Collection[str]
) -> CheckOutcome:
    """Map the Soda result(s) of one spec check; unmeasured checks fail."""
    kind = checks.kind_of(check)
    threshold = kind.threshold_text(check, strict)
    if set(check.column_names) & set(absent):
        return CheckOutcome(check.name, check.level, False, None, threshold)
    passed, value = kind.measure(check, results, empty=empty)
    return CheckOutcome(check.name, check.level, passed, value, threshold)
