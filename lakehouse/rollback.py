"""Roll a silver or gold table back to an earlier version, with its consumption (README: "History and rollback").

:func:`plan` checks what a rollback would do and refuses what it cannot do safely;
:func:`execute` makes it one commit: ``DeltaTable.restore(V)`` carrying, as its
application transactions, the upstream versions the table had consumed at version V
(delta-rs writes them into the restore commit, atomically with the restored files), so
the next run reads the upstream changes that the undone commits had consumed, once.

Downstream tables keep their consumed versions: their data still holds what they computed
from the undone versions. The restore commit's change data feed is, once gold has made it
row-exact (:func:`lakehouse.layers.gold.restore.net`), the undone versions' changes
reversed: the next gold run recomputes the partitions they touched from the restored rows.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import unquote

import pyarrow as pa
from deltalake import DeltaTable

from lakehouse import segments
from lakehouse.commit import commit_properties, committed_version, gold_app, open_table
from lakehouse.config import Settings
from lakehouse.errors import ConfigError
from lakehouse.history import resolve, upstream_of
from lakehouse.layers.silver.batch import silver_app_of
from lakehouse.pipeline import Declaration, Pipeline
from lakehouse.storage import ObjectStore, open_store, storage_options

ROLLBACK = "rollback"
"""Commit metadata ``lakehouse.rollback`` of a restore commit: ``{"from": C, "to": V}``."""


class RollbackRefused(ConfigError):
    """A rollback that would not leave the table and its consumers consistent: nothing was changed."""


@dataclass(frozen=True)
class Consumer:
    """A downstream table reading the rolled-back one."""

    table: str
    consumed: int | None
    """The version of the rolled-back table it has consumed (None: never)."""


@dataclass(frozen=True)
class Plan:
    """What :func:`execute` will do."""

    table: str
    uri: str
    current: int
    target: int
    consumption: dict[str, int]
    """Application id → the upstream version consumed at ``target``: what the restore commit sets."""
    undone: dict[str, int | None] = field(default_factory=dict)
    """Application id → the upstream version consumed now (what the rollback takes back)."""
    consumers: list[Consumer] = field(default_factory=list)

    def describe(self) -> list[str]:
        """The plan in lines a user confirms."""
        lines = [f"{self.table}: restore version {self.target} as a new commit (now at version {self.current})"]
        for app, version in self.consumption.items():
            now = self.undone.get(app)
            lines.append(f"  consumption of {upstream_of(app)}: back to v{version} (now v{now}); "
                         f"the next run reads v{version + 1} onwards again")
        for c in self.consumers:
            if c.consumed is not None and c.consumed > self.target:
                lines.append(f"  {c.table} has consumed v{c.consumed}: its next run recomputes the partitions "
                             f"versions {self.target + 1}..{c.consumed} touched (the restore's change feed)")
            else:
                lines.append(f"  {c.table} has consumed v{c.consumed}: not past v{self.target}, it reads the restore as any change")
        return lines


def _apps(pipeline: Pipeline, layer: str, name: str) -> tuple[list[str], list[tuple[str, str, str]]]:
    """The table's own application ids, and its consumers as (table, uri layer/name, app id)."""
    if layer == "silver":
        spec = pipeline.dataset(name).spec
        readers = [(m.spec.qualified_name, m.spec.name, gold_app(m.spec.name, name)) for m in pipeline.models if name in m.inputs]
        return [silver_app_of(spec)], readers
    model = next((m for m in pipeline.models if m.spec.name == name), None)
    inputs = sorted(segments.READS) if model is None else model.inputs  # else the monthly segments' table
    return [gold_app(name, i) for i in inputs], []


def _paths(table: DeltaTable) -> list[str]:
    return [str(p) for p in pa.table(table.get_add_actions(flatten=True)).column("path").to_pylist()]


def _missing_files(store: ObjectStore, then: DeltaTable, now: DeltaTable) -> list[str]:
    """The data files of ``then`` that the restore must add back and that are gone (vacuumed).

    One listing per file the restore re-adds (the files the undone commits removed), from
    the two snapshots' logs: no data is read.
    """
    current = set(_paths(now))
    missing = []
    for path in (p for p in _paths(then) if p not in current):
        key = unquote(path)
        if not any(o.key == key for o in store.list(key)):
            missing.append(key)
    return missing


def plan(
    settings: Settings, declaration: Declaration, table: str, *, to_version: int, pipeline: str | None = None
) -> Plan:
    """Check a rollback of ``table`` (``silver.orders``, ``gold.daily_sales``) to ``to_version``.

    Raises :class:`RollbackRefused`, changing nothing, when the table is not a silver or
    gold table of the declaration's ``pipeline`` (None: its only one), when ``to_version`` is not older than the current version or
    not in the log, when its files are vacuumed, or when the table had consumed nothing
    at that version (rebuild it instead).
    """
    layer, name = resolve(declaration, table)
    chosen = declaration.pipeline(pipeline)
    qualified = f"{layer}.{name}"
    if layer not in ("silver", "gold"):
        msg = (f"{qualified}: only silver and gold tables are rolled back (bronze is the replayable log; "
               "a quarantine follows bronze); rebuild from bronze instead")
        raise RollbackRefused(msg)
    options = storage_options(settings)
    uri = settings.table_uri(layer, name)
    now = open_table(uri, options)
    if now is None:
        msg = f"{qualified} has no versions yet"
        raise RollbackRefused(msg)
    current = now.version()
    if not 0 <= to_version < current:
        msg = f"{qualified} is at version {current}: --to-version must be an older version (0..{current - 1}), not {to_version}"
        raise RollbackRefused(msg)
    try:
        then = DeltaTable(uri, version=to_version, storage_options=options)
    except Exception as exc:
        msg = f"{qualified}: version {to_version} is no longer in the log ({str(exc).splitlines()[0]})"
        raise RollbackRefused(msg) from exc
    missing = _missing_files(open_store(uri, settings), then, now)
    if missing:
        msg = (f"{qualified}: version {to_version} is older than what vacuum kept: {len(missing)} of its data files "
               f"are gone (e.g. {missing[0]}); choose a later version")
        raise RollbackRefused(msg)
    own, readers = _apps(chosen, layer, name)
    consumption: dict[str, int] = {}
    for app in own:
        version = then.transaction_version(app)
        if version is None:
            msg = (f"{qualified}: at version {to_version} it had consumed nothing of {upstream_of(app)}; "
                   "choose a later version, or rebuild the table")
            raise RollbackRefused(msg)
        consumption[app] = version
    consumers = [
        Consumer(reader, committed_version(open_table(settings.table_uri("gold", model), options), app))
        for reader, model, app in readers
    ]
    return Plan(qualified, uri, current, to_version, consumption,
                {app: now.transaction_version(app) for app in own}, consumers)


def execute(settings: Settings, chosen: Plan) -> int:
    """Restore the table as ``chosen`` planned, in one commit; returns the new version.

    Refuses (:class:`RollbackRefused`) if the table has moved since the plan was made.
    """
    table = DeltaTable(chosen.uri, storage_options=storage_options(settings))
    if table.version() != chosen.current:
        msg = f"{chosen.table} moved from version {chosen.current} to {table.version()} since the plan; nothing was changed"
        raise RollbackRefused(msg)
    metadata: Mapping[str, object] = {ROLLBACK: {"from": chosen.current, "to": chosen.target}}
    table.restore(chosen.target, commit_properties=commit_properties(chosen.consumption, metadata))
    table.update_incremental()
    return table.version()
