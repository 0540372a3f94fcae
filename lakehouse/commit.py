"""Exactly-once: progress lives in the Delta commit (DESIGN.md, invariant 1).

Every write carries Delta application transactions (``app_id`` → ``version``) and commit
metadata in the same atomic commit as its data. Progress is read back with
:func:`committed_version`; nothing else keeps it.

A write that raised may still have landed (object storage can lose the acknowledgement of
a commit, STACK.md), so :func:`write_once` re-reads the transaction version before it lets
the error through: a write whose version is already committed is a success, never retried.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
from deltalake import CommitProperties, DeltaTable, Transaction
from deltalake.exceptions import TableNotFoundError

from lakehouse.errors import CommitConflict

log = logging.getLogger(__name__)

METADATA_PREFIX = "lakehouse."


def app_id(target: str, source: str) -> str:
    """The application id under which ``target`` records what it consumed of ``source``.

    >>> app_id("silver/orders", "bronze/orders_raw")
    'lakehouse:silver/orders<-bronze/orders_raw'
    """
    return f"lakehouse:{target}<-{source}"


def open_table(uri: str, storage_options: Mapping[str, str]) -> DeltaTable | None:
    """The Delta table at ``uri``, or ``None`` when there is none yet."""
    try:
        return DeltaTable(uri, storage_options=dict(storage_options))
    except TableNotFoundError:
        return None


def committed_version(table: DeltaTable | None, app: str) -> int | None:
    """The last version that application ``app`` committed to ``table`` (None: never)."""
    if table is None:
        return None
    table.update_incremental()
    return table.transaction_version(app)


def commit_properties(
    transactions: Mapping[str, int], metadata: Mapping[str, object] | None = None
) -> CommitProperties:
    """Commit properties carrying application transactions and ``lakehouse.*`` metadata."""
    custom = {
        f"{METADATA_PREFIX}{key}": value if isinstance(value, str) else json.dumps(value)
        for key, value in (metadata or {}).items()
    }
    return CommitProperties(
        app_transactions=[Transaction(app, version) for app, version in transactions.items()],
        custom_metadata=custom,
    )


def latest_metadata(table: DeltaTable | None, key: str, *, horizon: int = 200) -> Any | None:
    """The ``lakehouse.<key>`` metadata of the newest commit that carries it, else None.

    Reads commit infos from the newest backwards: the last 10 first, then up to
    ``horizon`` (other writers' commits, such as a replay or a compaction, may sit
    between), so what it costs does not grow with the table's history.
    """
    if table is None:
        return None
    name = f"{METADATA_PREFIX}{key}"
    for limit in (10, horizon):
        for entry in table.history(limit=limit):
            value = entry.get(name)
            if value is not None:
                return json.loads(value) if isinstance(value, str) else value
        if table.version() < limit:
            break
    return None


@dataclass(frozen=True)
class Landed:
    """The outcome of :func:`write_once`."""

    version: int
    """The table version after the write (or the version found already committed)."""
    already: bool
    """True when the write had already landed (a re-run or a lost acknowledgement)."""
    files_added: int = 0
    """Data files the write added (from its commit's metrics; 0 when it had already landed)."""


def _all_committed(table: DeltaTable | None, transactions: Mapping[str, int]) -> bool:
    if table is None:
        return False
    table.update_incremental()
    for app, version in transactions.items():
        done = table.transaction_version(app)
        if done is None or done < version:
            return False
    return True


def write_once(
    uri: str,
    storage_options: Mapping[str, str],
    *,
    transactions: Mapping[str, int],
    write: Callable[[], None],
) -> Landed:
    """Run ``write`` unless every ``app → version`` in ``transactions`` is committed.

    ``write`` must commit those transactions with its data. On an error the table's
    transaction versions are read first: if the commit landed (its acknowledgement was
    lost), the write counts as done and is not repeated.
    """
    table = open_table(uri, storage_options)
    if _all_committed(table, transactions):
        assert table is not None
        return Landed(version=table.version(), already=True)
    try:
        write()
    except Exception as exc:
        table = open_table(uri, storage_options)
        if _all_committed(table, transactions):
            assert table is not None
            log.warning("commit of %s landed although the write raised: %s", dict(transactions), exc)
            return Landed(version=table.version(), already=True)
        if "CommitFailed" in type(exc).__name__ or "concurrent" in str(exc).lower():
            raise CommitConflict(f"{uri}: {exc}") from exc
        raise
    if table is None:
        table = open_table(uri, storage_options)
    assert table is not None
    table.update_incremental()
    metrics = (table.history(limit=1) or [{}])[0].get("operationMetrics") or {}
    added = metrics.get("num_added_files", metrics.get("num_target_files_added", 0))
    return Landed(version=table.version(), already=False, files_added=int(added or 0))


def ensure_table(
    uri: str,
    schema: pa.Schema,
    storage_options: Mapping[str, str],
    *,
    partition_by: list[str] | None = None,
    change_data_feed: bool = True,
    configuration: Mapping[str, str] | None = None,
) -> DeltaTable:
    """Open the table at ``uri``, creating it (with change data feed on) if it is missing.

    ``configuration``: further table properties of a new table (an existing one keeps its own).
    """
    table = open_table(uri, storage_options)
    if table is not None:
        return table
    # a checkpoint every 10 commits keeps what opening the table reads bounded (the
    # default, 100, replays up to 100 JSON commits on every open)
    configuration = {"delta.checkpointInterval": "10", **(configuration or {})}
    if change_data_feed:
        configuration["delta.enableChangeDataFeed"] = "true"
    try:
        return DeltaTable.create(
            uri,
            schema,
            partition_by=partition_by,
            mode="ignore",
            configuration=configuration,
            storage_options=dict(storage_options),
        )
    except Exception:
        # another writer created it first
        table = open_table(uri, storage_options)
        if table is None:
            raise
        return table
