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
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import pyarrow as pa
from deltalake import CommitProperties, DeltaTable, Transaction
from deltalake.exceptions import TableNotFoundError

from lakehouse.dev.faults import rendezvous
from lakehouse.errors import CommitConflict, LakehouseError, StaleBatch

log = logging.getLogger(__name__)

METADATA_PREFIX = "lakehouse."


def app_id(target: str, source: str) -> str:
    """The application id under which ``target`` records what it consumed of ``source``.

    >>> app_id("silver/orders", "bronze/orders_raw")
    'lakehouse:silver/orders<-bronze/orders_raw'
    """
    return f"lakehouse:{target}<-{source}"


# Every application id of the lakehouse is built here, by one of these (the one home of the
# format: maintenance and recovery read the same ids back).


def bronze_app(table: str, prefix: str) -> str:
    """A bronze table's progress through a landing prefix (its batch sequence number)."""
    return app_id(f"bronze/{table}", f"landing/{prefix}")


def bronze_source_app(table: str, source: str, resource: str) -> str:
    """A bronze table's progress through a resource of a source read from a cursor (its batch sequence number)."""
    return app_id(f"bronze/{table}", f"source/{source}/{resource}")


def silver_app(table: str, bronze: str) -> str:
    """The bronze version a silver table has merged up to."""
    return app_id(f"silver/{table}", f"bronze/{bronze}")


def quarantine_app(table: str, bronze: str) -> str:
    """The bronze version whose rejected rows a quarantine table holds."""
    return app_id(f"quarantine/{table}", f"bronze/{bronze}")


def replay_app(bronze: str, table: str) -> str:
    """The quarantine version a replay has re-submitted to bronze."""
    return app_id(f"bronze/{bronze}", f"quarantine/{table}")


def gold_app(model: str, silver: str) -> str:
    """The silver version of one input a gold model has recomputed up to."""
    return app_id(f"gold/{model}", f"silver/{silver}")


def scan_app(table: str, stage: str, consumer: str) -> str:
    """One gate's scans of what ``consumer`` (an app id) consumes.

    >>> scan_app("silver.orders", "bronze_to_silver", "lakehouse:silver/orders<-bronze/orders_raw")
    'lakehouse:quality/scan_results<-silver.orders:bronze_to_silver@lakehouse:silver/orders<-bronze/orders_raw'
    """
    return f"lakehouse:quality/scan_results<-{table}:{stage}@{consumer}"


def open_table(uri: str, storage_options: Mapping[str, str]) -> DeltaTable | None:
    """The Delta table at ``uri``, or ``None`` when there is none yet."""
    try:
        return DeltaTable(uri, storage_options=dict(storage_options))
    except TableNotFoundError:
        return None


def committed_version(table: DeltaTable | None, app: str) -> int | None:
    """The last version that application ``app`` committed to ``table`` (None: never).

    As of the snapshot ``table`` holds: every caller passes a table it has just opened
    (refreshing it again would cost a listing of the log on object storage for nothing).
    """
    if table is None:
        return None
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
    rows_added: int | None = None
    """Rows the write's commit added, by its own metrics (None: had already landed, or no commit)."""


def _done(
    table: DeltaTable, transactions: Mapping[str, int], expect: Mapping[str, int | None] | None
) -> dict[str, int | None]:
    """The committed version of every app of ``expect``, and of ``transactions`` up to the first
    one not committed yet: enough to tell whether all are, and each look-up reads the log."""
    done: dict[str, int | None] = {}
    for app, version in transactions.items():
        found = done[app] = table.transaction_version(app)
        if found is None or found < version:
            break
    for app in expect or {}:
        if app not in done:
            done[app] = table.transaction_version(app)
    return done


def _all_committed(done: Mapping[str, int | None], transactions: Mapping[str, int]) -> bool:
    return all((v := done.get(app)) is not None and v >= version for app, version in transactions.items())


WRITE_ID = "write_id"
"""Commit metadata ``lakehouse.write_id``: which :func:`write_once` call made the commit."""


def _landed_mine(table: DeltaTable, base: int, write_id: str) -> bool:
    """Whether a commit after version ``base`` carries ``write_id`` (this call's own commit)."""
    newer = table.version() - base
    if newer <= 0:
        return False
    name = f"{METADATA_PREFIX}{WRITE_ID}"
    return any(entry.get(name) == write_id for entry in table.history(limit=newer))


def _metrics_of(table: DeltaTable, base: int, write_id: str) -> dict[str, Any]:
    name = f"{METADATA_PREFIX}{WRITE_ID}"
    for entry in table.history(limit=max(table.version() - base, 1)):
        if entry.get(name) == write_id:
            return entry.get("operationMetrics") or {}
    return {}


def write_once(
    uri: str,
    storage_options: Mapping[str, str],
    *,
    transactions: Mapping[str, int],
    write: Callable[[DeltaTable, CommitProperties], None],
    metadata: Mapping[str, object] | None = None,
    expect: Mapping[str, int | None] | None = None,
    if_another_committed: Literal["done", "conflict"] = "done",
    table: DeltaTable | None = None,
) -> Landed:
    """Run ``write`` unless every ``app → version`` in ``transactions`` is committed.

    ``write(table, properties)`` must commit against ``table`` (the snapshot on which the
    versions were checked: ``write_deltalake(table, …)``, ``table.merge(…)``) with
    ``properties`` (the transactions, ``metadata`` and a write id). delta-rs then checks
    that snapshot against every commit that landed since, and a commit that carries one of
    the same application ids fails with a conflict (``ConcurrentTransaction``) instead of
    being committed a second time, which a write through a URI (a fresh snapshot) would be.

    ``expect``: the versions the write was prepared from (``None``: never committed). If
    another writer has moved one of them without committing all of ``transactions``, the
    batch overlaps what it committed: :class:`~lakehouse.errors.StaleBatch`, nothing written.

    On an error the table is read again: the write's own commit (its write id) landed and
    the acknowledgement was lost, so it is done; or another writer committed the same
    versions first: done when the versions name what was consumed (silver, gold), a
    :class:`~lakehouse.errors.CommitConflict` to retry when they are sequence numbers
    (``if_another_committed="conflict"``: bronze batches, replays), because the other
    writer's batch may hold other rows; or a conflict, to retry.

    ``table``: the table at ``uri`` as the caller already opened it (:func:`ensure_table`'s);
    it is brought up to date here instead of being opened again (on object storage an open
    reads the log's listing, checkpoint and commits; an update only what is newer).
    """
    if table is None:
        table = open_table(uri, storage_options)
        if table is None:
            msg = f"{uri}: no Delta table to write to (ensure_table first)"
            raise LakehouseError(msg)
    else:
        table.update_incremental()
    done = _done(table, transactions, expect)
    if _all_committed(done, transactions):
        if if_another_committed == "conflict":
            msg = f"{uri}: another writer committed {dict(transactions)} first; retry"
            raise CommitConflict(msg)
        return Landed(version=table.version(), already=True)
    _check_expected(uri, done, expect)
    base = table.version()
    write_id = uuid.uuid4().hex
    props = commit_properties(transactions, {**(metadata or {}), WRITE_ID: write_id})
    rendezvous("commit.checked")
    try:
        write(table, props)
    except Exception as exc:
        again = open_table(uri, storage_options)
        if again is None:
            raise
        if _landed_mine(again, base, write_id):
            log.warning("commit of %s landed although the write raised: %s", dict(transactions), exc)
            return Landed(version=again.version(), already=True)
        done = _done(again, transactions, expect)
        if _all_committed(done, transactions):
            if if_another_committed == "done":
                log.info("%s: another writer committed %s first", uri, dict(transactions))
                return Landed(version=again.version(), already=True)
            msg = f"{uri}: another writer committed {dict(transactions)} first; retry"
            raise CommitConflict(msg) from exc
        if "CommitFailed" in type(exc).__name__ or "concurrent" in str(exc).lower():
            _check_expected(uri, done, expect)
            msg = f"{uri}: {exc}"
            raise CommitConflict(msg) from exc
        raise
    # a write through ``table`` leaves it at the version of its own commit: no update needed
    metrics = _metrics_of(table, base, write_id)
    added = metrics.get("num_added_files", metrics.get("num_target_files_added", 0))
    rows = metrics.get("num_added_rows")
    return Landed(
        version=table.version(), already=False, files_added=int(added or 0),
        rows_added=None if rows is None else int(rows),
    )


def _check_expected(uri: str, done: Mapping[str, int | None], expect: Mapping[str, int | None] | None) -> None:
    """Refuse a batch prepared from versions that another writer has moved since."""
    for app, version in (expect or {}).items():
        if done.get(app) != version:
            msg = (
                f"{uri}: another writer committed {app} up to version {done.get(app)} while this batch "
                f"was prepared from {version}; nothing was written, the next run promotes the rest"
            )
            raise StaleBatch(msg)


FILE_SIZE = "delta.targetFileSize"
"""The table property of the size a table's writes, merges and compaction aim at per file."""


def file_size(table: DeltaTable) -> int | None:
    """The table's ``delta.targetFileSize`` in bytes; None when it does not set one."""
    configured = table.metadata().configuration.get(FILE_SIZE)
    return int(configured) if configured else None


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
