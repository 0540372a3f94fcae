"""Rebuild silver and gold from bronze alone, into new table versions (README: "Rebuild (Kappa replay)").

Bronze is the replayable log. :func:`plan` checks that every dataset's bronze still holds
everything from its first version (its log not truncated, none of its data files
vacuumed) and refuses otherwise; :func:`reset` then writes ONE commit per silver,
quarantine and gold table that empties it and, in the same commit, sets its consumption
back: a silver and a quarantine table to bronze version ``-1`` (consumed nothing: the next
promotion reads bronze from version 0, ``committed_version + 1``), a gold model to the
versions of its inputs' emptying commits (it has consumed the deletes, so it never reads
silver's "every row deleted" feed; it holds no rows to recompute either). The log keeps
every earlier version, and ``lakehouse history`` shows the emptying commit.

After the reset the engine's ordinary promotion rounds (:func:`lakehouse.engine.rebuild`,
the ``rebuild`` flow) re-read bronze in bounded batches and gold recomputes every partition
the re-inserted rows touch; bronze itself is never written.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field

import pyarrow as pa
from deltalake import DeltaTable, write_deltalake

from lakehouse.commit import (
    METADATA_PREFIX,
    commit_properties,
    gold_app,
    open_table,
    quarantine_app,
)
from lakehouse.config import Settings
from lakehouse.errors import ConfigError
from lakehouse.layers.bronze import bronze_name
from lakehouse.layers.silver.batch import silver_app_of
from lakehouse.pipeline import Pipeline
from lakehouse.storage import storage_options

REBUILD = "rebuild"
"""Commit metadata ``lakehouse.rebuild`` of an emptying commit: ``{"from": "bronze", "emptied": version before}``,
and in a silver table's the rounds the rebuild replays (``"schedule"``, :func:`schedule`)."""

NOTHING = -1
"""The bronze version a silver or quarantine table has consumed when it has consumed nothing (reads from 0)."""

SOURCES = ("bronze",)
"""What ``--from`` accepts."""


class RebuildRefused(ConfigError):
    """A rebuild that cannot give the tables built incrementally: nothing was changed."""


@dataclass(frozen=True)
class Reset:
    """One table that the rebuild empties, and the consumption its emptying commit sets."""

    table: str
    """``silver.orders``, ``quarantine.orders``, ``gold.daily_sales``."""
    uri: str
    version: int
    """The table's version when planned."""
    rows: int
    """Rows it holds (from the log's file statistics)."""
    consumed: dict[str, int | None] = field(default_factory=dict)
    """Upstream (``bronze.orders_raw``, ``silver.orders``) → the version it has consumed now."""


@dataclass(frozen=True)
class Plan:
    """What :func:`reset` empties and what the promotion then reads."""

    pipeline: str
    silver: list[Reset]
    quarantine: list[Reset]
    gold: list[Reset]
    bronze: dict[str, int] = field(default_factory=dict)
    """Bronze table (``bronze.orders_raw``) → its current version: what silver re-reads, 0..v."""
    schedule: list[dict[str, int]] = field(default_factory=list)
    """The original promotion rounds, in order: dataset → the bronze version its merge took it to
    (from the silver tables' own commits, :func:`schedule`); replayed before any further batch."""

    def describe(self) -> list[str]:
        """The plan in lines a user confirms."""
        lines = [f"{self.pipeline}: rebuild silver and gold from bronze (bronze is not changed; each table "
                 "below gets one commit that empties it, the log keeps its history)"]
        for r in self.silver:
            (upstream, consumed), = r.consumed.items()
            lines.append(f"  {r.table}: empty {r.rows} rows (now v{r.version}, consumed {upstream} v{consumed}); "
                         f"re-read {upstream} v0..v{self.bronze[upstream]}")
        lines += [f"  {r.table}: empty {r.rows} rows (now v{r.version}); refilled by the same reads" for r in self.quarantine]
        lines += [f"  {r.table}: empty {r.rows} rows (now v{r.version}); recomputed for every partition the "
                  "re-inserted rows touch" for r in self.gold]
        lines.append(f"  silver re-reads bronze in the {len(self.schedule)} batches of its original rounds, "
                     "then in bounded batches until none is left")
        return lines


def _rows(table: DeltaTable) -> int:
    actions = pa.table(table.get_add_actions(flatten=True))
    if actions.num_rows == 0:
        return 0
    counts = actions.column("num_records").to_pylist()
    return sum(int(n or 0) for n in counts)


def _check_bronze(qualified: str, table: DeltaTable) -> None:
    """Refuse a bronze table that no longer holds its whole history (log-only: no data is read)."""
    entries = table.history()
    oldest = min((int(e["version"]) for e in entries), default=0)
    if oldest > 0:
        msg = (f"{qualified}: its log starts at version {oldest} (older entries expired), so bronze no longer holds "
               "everything silver consumed; a rebuild cannot replay it")
        raise RebuildRefused(msg)
    vacuumed = sum(int((e.get("operationMetrics") or {}).get("numDeletedFiles") or 0)
                   for e in entries if e.get("operation") == "VACUUM END")
    if vacuumed:
        msg = (f"{qualified}: vacuum deleted {vacuumed} of its data files, which its change feed from version 0 "
               "needs; a rebuild cannot replay it")
        raise RebuildRefused(msg)


BRONZE_TO = f"{METADATA_PREFIX}bronze_to"
"""A silver merge's commit metadata: the bronze version it took the table to."""


def schedule(tables: Mapping[str, DeltaTable], order: list[str]) -> list[dict[str, int]]:
    """The original promotion rounds of the silver ``tables`` (dataset → table), from their logs.

    Why: a row-level ``reference`` check depends on what the referenced table held when the
    batch was promoted (an order line whose product arrived a window later was quarantined),
    so a rebuild that read all of bronze at once would let such a line through and differ
    from the tables built incrementally. The batches are therefore replayed with their
    original boundaries and in their original order: every merge's ``lakehouse.bronze_to``,
    all tables' merges sorted by commit time, cut into rounds as a round commits them (each
    dataset once, in declaration order). Behind a table's last emptying commit the log holds
    the rebuild's own replay, so the rounds before it come from that commit, which carries
    them (``lakehouse.rebuild.schedule``), and only the merges after it beyond those rounds'
    boundaries are added: a rebuild run again, or after an interrupted one, replays the same.
    """
    events: list[tuple[int, int, str, int]] = []
    stored: list[dict[str, int]] | None = None
    for name, table in tables.items():
        for entry in table.history():  # newest first: stop at the last rebuild's emptying commit
            mark = entry.get(f"{METADATA_PREFIX}{REBUILD}")
            if mark is not None:
                info = json.loads(mark) if isinstance(mark, str) else mark
                stored = stored if stored is not None else list(info.get("schedule") or [])
                break
            if entry.get(BRONZE_TO) is not None:
                events.append((int(entry["timestamp"]), order.index(name), name, int(entry[BRONZE_TO])))
    rounds: list[dict[str, int]] = [dict(r) for r in stored or []]
    covered = {name: max((r[name] for r in rounds if name in r), default=-1) for name in order}
    last = len(order)
    fresh = False
    for _, index, name, bronze_to in sorted(events):
        if bronze_to <= covered[name]:
            continue  # the rebuild's replay of a stored round
        if not fresh or index <= last:
            rounds.append({})
            fresh = True
        rounds[-1][name] = bronze_to
        last = index
    return rounds


def plan(settings: Settings, pipeline: Pipeline, *, source: str = "bronze") -> Plan:
    """Check a rebuild of ``pipeline``'s silver, quarantine and gold tables from ``source`` (``bronze``).

    Raises :class:`RebuildRefused`, changing nothing, for another ``source``, when a
    silver table exists but its bronze does not, or when a bronze table's log or files no
    longer reach back to its first version.
    """
    if source not in SOURCES:
        msg = f"--from {source}: only --from bronze is supported (bronze is the replayable log)"
        raise RebuildRefused(msg)
    options = storage_options(settings)
    silver: list[Reset] = []
    tables: dict[str, DeltaTable] = {}
    quarantine: list[Reset] = []
    bronze_versions: dict[str, int] = {}
    for ds in pipeline.datasets:
        spec = ds.spec
        name = bronze_name(spec)
        qualified = f"bronze.{name}"
        bronze = open_table(settings.table_uri("bronze", name), options)
        table = open_table(settings.table_uri("silver", spec.name), options)
        if bronze is None:
            if table is not None:
                msg = f"{spec.qualified_name}: its bronze table {qualified} is missing; there is nothing to rebuild it from"
                raise RebuildRefused(msg)
            continue
        _check_bronze(qualified, bronze)
        bronze_versions[qualified] = bronze.version()
        if table is not None:
            consumed = table.transaction_version(silver_app_of(spec))
            if consumed is not None and consumed > bronze.version():
                msg = (f"{spec.qualified_name} has consumed {qualified} up to v{consumed}, but bronze is at "
                       f"v{bronze.version()} (replaced?); a rebuild cannot replay what it consumed")
                raise RebuildRefused(msg)
            silver.append(Reset(spec.qualified_name, table.table_uri, table.version(), _rows(table), {qualified: consumed}))
            tables[spec.name] = table
        rejects = open_table(settings.table_uri("quarantine", spec.name), options)
        if rejects is not None:
            app = quarantine_app(spec.name, name)
            quarantine.append(Reset(f"quarantine.{spec.name}", rejects.table_uri, rejects.version(), _rows(rejects),
                                    {qualified: rejects.transaction_version(app)}))
    gold: list[Reset] = []
    for model in pipeline.models:
        table = open_table(settings.table_uri("gold", model.spec.name), options)
        if table is not None:
            consumed = {f"silver.{i}": table.transaction_version(gold_app(model.spec.name, i)) for i in model.inputs}
            gold.append(Reset(model.spec.qualified_name, table.table_uri, table.version(), _rows(table), consumed))
    order = [ds.spec.name for ds in pipeline.datasets]
    return Plan(pipeline.name, silver, quarantine, gold, bronze_versions, schedule(tables, order))


def _empty(
    settings: Settings, reset: Reset, transactions: Mapping[str, int], rounds: list[dict[str, int]] | None = None
) -> int:
    """One commit that removes every row of the table and sets ``transactions``; returns its version."""
    table = DeltaTable(reset.uri, storage_options=storage_options(settings))
    if table.version() != reset.version:
        msg = (f"{reset.table} moved from version {reset.version} to {table.version()} since the plan "
               "(is a run in progress?); run the rebuild again")
        raise RebuildRefused(msg)
    mark: dict[str, object] = {"from": "bronze", "emptied": reset.version}
    if rounds is not None:
        mark["schedule"] = rounds
    props = commit_properties(transactions, {REBUILD: mark})
    if _rows(table) or len(table.file_uris()):
        table.delete(commit_properties=props)  # removes whole files: no data is read or rewritten
    else:  # a DELETE that removes nothing commits nothing: the transactions still have to land
        empty = pa.schema(table.schema().to_arrow()).empty_table()
        write_deltalake(table, empty, mode="overwrite", commit_properties=props)
    table.update_incremental()
    return table.version()


def reset(settings: Settings, chosen: Plan, pipeline: Pipeline) -> dict[str, int]:
    """Empty every table of ``chosen``, one commit each, with its consumption set back.

    Silver and quarantine first (their bronze consumption to :data:`NOTHING`), then gold
    (its consumption to each input's emptying version, or its current version when the
    input was not emptied). Returns table → the version of its emptying commit. Refuses
    (:class:`RebuildRefused`) a table that moved since the plan was made.
    """
    done: dict[str, int] = {}
    names = {ds.spec.qualified_name: ds.spec for ds in pipeline.datasets}
    for r in chosen.silver:
        done[r.table] = _empty(settings, r, {silver_app_of(names[r.table]): NOTHING}, chosen.schedule)
    for r in chosen.quarantine:
        spec = names[f"silver.{r.table.split('.', 1)[1]}"]
        done[r.table] = _empty(settings, r, {quarantine_app(spec.name, bronze_name(spec)): NOTHING})
    options = storage_options(settings)
    for r in chosen.gold:
        model = next(m for m in pipeline.models if m.spec.qualified_name == r.table)
        transactions: dict[str, int] = {}
        for i in model.inputs:
            version = done.get(f"silver.{i}")
            if version is None:
                table = open_table(settings.table_uri("silver", i), options)
                if table is None:
                    continue
                version = table.version()
            transactions[gold_app(model.spec.name, i)] = version
        done[r.table] = _empty(settings, r, transactions)
    return done


def table_rows(settings: Settings, pipeline: Pipeline) -> dict[str, int]:
    """Rows per existing silver, quarantine and gold table of ``pipeline`` (the log's file statistics; no data is read)."""
    options = storage_options(settings)
    names = [(layer, ds.spec.name) for layer in ("silver", "quarantine") for ds in pipeline.datasets]
    names += [("gold", m.spec.name) for m in pipeline.models]
    out: dict[str, int] = {}
    for layer, name in names:
        table = open_table(settings.table_uri(layer, name), options)
        if table is not None:
            out[f"{layer}.{name}"] = _rows(table)
    return out
