"""Quality gates: a Soda v4 contract per batch, derived from its table spec, and their log.

- :mod:`.contract`: the contract YAML (each check's fragment from its kind, :mod:`lakehouse.checks`);
- :mod:`.soda`: the Soda runtime over an in-memory DuckDB;
- :mod:`.gate`: :func:`run_gate`, which scans one batch and maps Soda's results back;
- :mod:`.results`: :class:`GateResult` / :class:`CheckOutcome`, and the error that blocks a promotion;
- :mod:`.scan_log`: every scan appended to ``<warehouse>/_quality/scan_results``.
"""

from __future__ import annotations

from lakehouse.checks.schema import TYPES_CHECK
from lakehouse.quality.contract import build_contract
from lakehouse.quality.gate import run_gate
from lakehouse.quality.results import CheckOutcome, GateResult, blocking_error

__all__ = ["TYPES_CHECK", "CheckOutcome", "GateResult", "blocking_error", "build_contract", "run_gate"]
