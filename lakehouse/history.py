"""A table's versions from its Delta log: what each commit consumed and what it wrote.

``lakehouse history TABLE`` prints :func:`history`. Everything comes from the log, never
from the table's data: the operation, time and metrics of each commit from
``DeltaTable.history()``, and what it consumed from the application transactions (``txn``
actions, DESIGN.md invariant 1) in the commit's own file ``_delta_log/<version>.json``.

>>> upstream_of("lakehouse:silver/orders<-bronze/orders_raw")
'bronze.orders_raw'
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from deltalake import DeltaTable

from lakehouse.catalog import table_names
from lakehouse.commit import METADATA_PREFIX, open_table
from lakehouse.config import Settings
from lakehouse.errors import ConfigError
from lakehouse.layers.bronze import bronze_name
from lakehouse.pipeline import Declaration
from lakehouse.storage import ObjectStore, open_store, storage_options


class UnknownTable(ConfigError):
    """A table name that is not one of the declaration's tables."""


@dataclass(frozen=True)
class Commit:
    """One version of a table, as its log entry tells it."""

    version: int
    timestamp: datetime | None
    operation: str
    consumed: dict[str, int] = field(default_factory=dict)
    """Upstream (``bronze.orders_raw``, ``landing/orders``) → the version or batch number this commit took the table to."""
    inserted: int | None = None
    updated: int | None = None
    deleted: int | None = None
    files_added: int | None = None
    files_removed: int | None = None
    note: str = ""
    """What else the commit says: a restore's target, a rollback, gold's touched partitions."""


def resolve(declaration: Declaration, table: str) -> tuple[str, str]:
    """``silver.orders`` → ``("silver", "orders")``; ``bronze.orders`` names the dataset's bronze table.

    Raises :class:`UnknownTable`, listing the known tables, for any other name.
    """
    known = table_names(declaration)
    layer, _, name = table.partition(".")
    if (layer, name) in known:
        return layer, name
    datasets = {ds.spec.name: ds.spec for p in declaration.pipelines.values() for ds in p.datasets}
    if layer == "bronze" and name in datasets:
        return layer, bronze_name(datasets[name])
    listed = ", ".join(f"{lay}.{n}" for lay, n in sorted(set(known)))
    msg = f"no table {table!r}; known tables: {listed}"
    raise UnknownTable(msg)


def upstream_of(app: str) -> str:
    """What an application id (:mod:`lakehouse.commit`) consumes, as a table name where it is one."""
    source = app.split("<-", 1)[1] if "<-" in app else app
    layer, _, name = source.partition("/")
    if layer in ("bronze", "silver", "gold", "quarantine") and "/" not in name:
        return f"{layer}.{name}"
    return source


def transactions(store: ObjectStore, version: int) -> dict[str, int] | None:
    """The application transactions (``txn`` actions) of one commit; None when its file is gone."""
    try:
        text = store.get(f"_delta_log/{version:020d}.json").decode()
    except Exception:  # a log file cleaned up after a checkpoint: the commit is only in the checkpoint
        return None
    out: dict[str, int] = {}
    for line in text.splitlines():
        if '"txn"' in line and (txn := json.loads(line).get("txn")):
            out[str(txn["appId"])] = int(txn["version"])
    return out


def _int(metrics: Mapping[str, Any], *names: str) -> int | None:
    for name in names:
        if metrics.get(name) is not None:
            return int(metrics[name])
    return None


def _note(entry: Mapping[str, Any]) -> str:
    operation = entry.get("operation")
    notes = []
    if operation == "RESTORE":
        notes.append(f"restored to v{(entry.get('operationParameters') or {}).get('version')}")
    rollback = entry.get(f"{METADATA_PREFIX}rollback")
    if rollback is not None:
        undone = json.loads(rollback) if isinstance(rollback, str) else rollback
        notes.append(f"rollback from v{undone.get('from')}")
    rebuild = entry.get(f"{METADATA_PREFIX}rebuild")
    if rebuild is not None:
        emptied = json.loads(rebuild) if isinstance(rebuild, str) else rebuild
        notes.append(f"emptied for a rebuild from {emptied.get('from')} (v{emptied.get('emptied')} had the rows)")
    touched = entry.get(f"{METADATA_PREFIX}touched")
    if touched is not None:
        parts = json.loads(touched) if isinstance(touched, str) else touched
        notes.append(f"{len(parts)} partition{'' if len(parts) == 1 else 's'} recomputed")
    for key in ("rejected", "duplicates"):
        value = entry.get(f"{METADATA_PREFIX}{key}")
        if value not in (None, "0", 0):
            notes.append(f"{key} {value}")
    return ", ".join(notes)


def commit_of(entry: Mapping[str, Any], consumed: Mapping[str, int] | None) -> Commit:
    """A :class:`Commit` from one ``DeltaTable.history()`` entry and its commit's transactions."""
    metrics: Mapping[str, Any] = entry.get("operationMetrics") or {}
    stamp = entry.get("timestamp")
    operation = str(entry.get("operation", "?"))
    return Commit(
        version=int(entry["version"]),
        timestamp=None if stamp is None else datetime.fromtimestamp(int(stamp) / 1000, tz=UTC),
        operation=operation,
        consumed={upstream_of(app): v for app, v in (consumed or {}).items()},
        inserted=_int(metrics, "num_target_rows_inserted", "num_added_rows", "num_inserted_rows"),
        updated=_int(metrics, "num_target_rows_updated", "num_updated_rows"),
        deleted=_int(metrics, "num_target_rows_deleted", "num_deleted_rows"),
        files_added=_int(metrics, "num_added_files", "num_target_files_added", "numRestoredFile", "numFilesAdded"),
        files_removed=_int(metrics, "num_removed_files", "num_target_files_removed", "numRemovedFile", "numFilesRemoved"),
        note=_note(entry),
    )


def commits(table: DeltaTable, store: ObjectStore, *, limit: int | None = 20) -> list[Commit]:
    """The table's newest ``limit`` versions (None: all), newest first, from its log only."""
    return [
        commit_of(entry, transactions(store, int(entry["version"])))
        for entry in table.history(limit=limit)
        if "version" in entry
    ]


def history(settings: Settings, declaration: Declaration, table: str, *, limit: int | None = 20) -> list[Commit]:
    """The versions of ``table`` (``silver.orders``), newest first; empty when it has none yet.

    Example::

        for c in history(Settings(), load(), "silver.orders", limit=5):
            print(c.version, c.operation, c.consumed, c.inserted)
    """
    layer, name = resolve(declaration, table)
    uri = settings.table_uri(layer, name)
    delta = open_table(uri, storage_options(settings))
    if delta is None:
        return []
    return commits(delta, open_store(uri, settings), limit=limit)
