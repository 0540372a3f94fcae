"""The Soda runtime: soda-core 4.28 (soda-duckdb) verifying a contract over Arrow tables.

The batch and its lookups are registered as views in a fresh in-memory DuckDB; Soda is
imported on first use (about a second). Soda's own INFO and DEBUG records are re-logged at
DEBUG on ``lakehouse.quality.soda`` instead of reaching the host's handlers; its warnings
and errors propagate as usual (Soda counts its errors from them).
"""

from __future__ import annotations

import logging
import os
import threading
import warnings
from collections.abc import Mapping
from datetime import datetime
from functools import cache
from typing import Any

import duckdb
import pyarrow as pa

from lakehouse.checks.base import DATA_SOURCE, SCHEMA
from lakehouse.specs import TableSpec

# before anything imports soda (it is imported on first use, see _soda)
os.environ.setdefault("SODA_CORE_TELEMETRY_ENABLED", "false")

log = logging.getLogger("lakehouse.quality")
_soda_log = logging.getLogger("lakehouse.quality.soda")

VIEW = "batch"
DATASET = f"{DATA_SOURCE}/{SCHEMA}/{VIEW}"


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
def _soda() -> tuple[Any, Any, Any, Any]:
    """Import Soda on first use (about a second) and quiet its logger."""
    with _soda_lock, warnings.catch_warnings():
        # soda_core.common.sql_ast warns about a UNION_ALL it defines, on import
        warnings.simplefilter("ignore", DeprecationWarning)
        from soda_core.common.logs import preserve_active_logs
        from soda_core.common.yaml import ContractYamlSource
        from soda_core.contracts.contract_verification import ContractVerificationSession
        from soda_duckdb.common.data_sources.duckdb_data_source import DuckDBDataSourceImpl
    soda_logger = logging.getLogger("soda")
    if not any(isinstance(f, _SodaToDebug) for f in soda_logger.filters):
        soda_logger.addFilter(_SodaToDebug())
    return ContractYamlSource, ContractVerificationSession, DuckDBDataSourceImpl, preserve_active_logs


def verify(
    contract: str, view: pa.Table, spec: TableSpec, lookups: Mapping[str, pa.Table], now: datetime | None
) -> dict[str, Any]:
    """Run the contract over ``view`` in a fresh in-memory DuckDB; Soda's results by check name."""
    contract_source, session_class, duckdb_source, preserve_active_logs = _soda()
    con = duckdb.connect()
    # Soda makes each scan's log collector the thread's active one and keeps the previous
    # one from it: left active, every scan of a long-lived worker stayed reachable from the
    # next (its records, its parsed contract), about 1.4 MB a window (the soak's slope).
    # The block puts the thread's previous collector (none) back when the scan is done.
    try:
        with preserve_active_logs():
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
