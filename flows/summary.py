"""What the flows return: typed summaries of a run, and their one markdown rendering.

``micro_batch`` returns a :class:`BatchSummary`, ``backfill`` a :class:`BackfillSummary`,
``replay_quarantine`` a :class:`ReplaySummary`, ``rebuild`` a :class:`RebuildSummary` and ``maintenance`` a
:class:`MaintenanceSummary`. They are frozen dataclasses of plain values (strings,
numbers, lists and dicts of them), so that a flow run in this process hands them back
as they are and a worker that persists results can pickle them. :func:`markdown` renders
any of them as the run's artifact; the command line renders them in the terminal
(``flows.cli.show``). ``to_dict()`` gives the nested dict, for JSON.

Example::

    summary = micro_batch(at="2026-01-01T00:15:00Z")
    print(summary.window, [(t.table, t.merged) for t in summary.tables])
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from lakehouse.layers.bronze import BronzeResult
from lakehouse.layers.gold import GoldResult
from lakehouse.layers.silver.batch import SilverResult
from lakehouse.maintenance import TableMaintenance
from lakehouse.replay import ReplayResult

LISTED = 20
"""Files listed per table in the maintenance artifact (a dry run lists what would be rewritten and deleted)."""


@dataclass(frozen=True)
class _Plain:
    def to_dict(self) -> dict[str, Any]:
        """The summary as nested dicts and lists (``dataclasses.asdict``), e.g. for JSON."""
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class BronzeCounts(_Plain):
    """One bronze ingest: rows appended, commits taken, data files added."""

    table: str
    rows: int
    commits: int
    files_added: int

    @classmethod
    def of(cls, result: BronzeResult) -> BronzeCounts:
        """The counts of one bronze ingest."""
        return cls(table=result.table, rows=result.rows, commits=result.commits, files_added=result.files_added)


@dataclass(frozen=True)
class TableCounts(_Plain):
    """One silver promotion: ``read == merged + deleted + rejected + duplicates + conflicts``, and what the merge did."""

    table: str
    read: int
    merged: int
    duplicates: int
    conflicts: int
    rejected: int
    superseded: int
    inserted: int
    updated: int
    unchanged: int
    files_added: int
    reasons: dict[str, int] = field(default_factory=dict)
    """Rejected rows per reason (the first reason of each row)."""
    examples: dict[str, str] = field(default_factory=dict)
    """One rejected row per reason: its full reason and the start of its raw text."""
    unknown_fields: dict[str, int] = field(default_factory=dict)
    """Records per member that is not a column."""
    evolved: dict[str, str] = field(default_factory=dict)
    """Columns the merge added to the table (``unknown_fields: evolve``): name → type."""
    deleted: int = 0
    """Keys whose latest version was a delete."""
    removed: int = 0
    """Silver rows those deletes removed (the others were older than silver's row, or of keys it never held)."""

    @classmethod
    def of(cls, result: SilverResult) -> TableCounts:
        """The counts of one silver merge (which always has counts)."""
        counts = result.counts
        assert counts is not None, f"{result.table}: a merge without counts"
        return cls(
            table=result.table, read=counts.read, merged=counts.merged, duplicates=counts.duplicates,
            conflicts=counts.conflicts, rejected=counts.rejected, superseded=counts.superseded,
            inserted=result.inserted, updated=result.updated, unchanged=result.unchanged,
            files_added=result.files_added, reasons=dict(result.reasons or {}), examples=dict(result.examples or {}),
            unknown_fields=dict(result.unknown_fields or {}), evolved=dict(result.evolved or {}),
            deleted=counts.deleted, removed=result.removed,
        )


@dataclass(frozen=True)
class GoldChange(_Plain):
    """One gold refresh: the partitions recomputed, the rows written, a preview of them."""

    table: str
    partitions: list[str]
    rows: int
    files_added: int = 0
    preview: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def of(cls, result: GoldResult) -> GoldChange:
        """What one gold overwrite changed; partitions as text."""
        return cls(table=result.table, partitions=[str(p) for p in result.touched], rows=result.rows,
                   files_added=result.files_added, preview=result.preview)


def table_counts(merged: Iterable[SilverResult]) -> list[TableCounts]:
    """Per silver promotion, its counts."""
    return [TableCounts.of(r) for r in merged]


def gold_changes(refreshed: Iterable[GoldResult]) -> list[GoldChange]:
    """Per gold refresh, what it changed."""
    return [GoldChange.of(g) for g in refreshed]


@dataclass(frozen=True)
class BatchSummary(_Plain):
    """One micro-batch window: files landed, and per layer what was written.

    A late scheduled run that skipped (see ``flows.microbatch.superseding_run``) has
    ``superseded_by`` set, no tables and no timings.
    """

    pipeline: str
    window: str
    """``2026-01-01 00:00–00:15``."""
    window_end: str
    """The window's end, ISO 8601."""
    files: int = 0
    bronze: list[BronzeCounts] = field(default_factory=list)
    tables: list[TableCounts] = field(default_factory=list)
    gold: list[GoldChange] = field(default_factory=list)
    seconds: float | None = None
    """The run's duration (None for a run that skipped)."""
    steps: dict[str, float] = field(default_factory=dict)
    """Seconds per step: ``bronze``, ``silver``, ``gold``."""
    superseded_by: str | None = None
    """The newer run that processes this run's files (this one skipped), or None."""

    @property
    def totals(self) -> tuple[int, int, int, int, int]:
        """Rows read, merged, rejected and duplicates over the tables, and the gold partitions recomputed."""
        t = self.tables
        return (sum(x.read for x in t), sum(x.merged for x in t), sum(x.rejected for x in t),
                sum(x.duplicates for x in t), sum(len(g.partitions) for g in self.gold))


@dataclass(frozen=True)
class BackfillSummary(_Plain):
    """A backfill: the windows planned, the summary of each finished one, and where it stopped."""

    pipeline: str
    span: str
    """``2026-01-01 00:00 → 06:00``."""
    planned: int
    """Windows in the range."""
    windows: list[BatchSummary] = field(default_factory=list)
    """What ``micro_batch`` returned for each finished window, in order."""
    stopped_at: str | None = None
    """The window that was blocked or failed (the backfill raised), or None."""
    reason: str | None = None


@dataclass(frozen=True)
class ReplayCounts(_Plain):
    """One dataset's quarantine replay."""

    table: str
    candidates: int
    """Quarantined rows not replayed before."""
    replayed: int
    """Of those, the rows that pass now (appended to bronze)."""
    still_failing: dict[str, int] = field(default_factory=dict)
    bronze_version: int | None = None

    @classmethod
    def of(cls, result: ReplayResult) -> ReplayCounts:
        """What one dataset's replay did."""
        return cls(table=result.table, candidates=result.candidates, replayed=result.replayed,
                   still_failing=dict(result.still_failing), bronze_version=result.version)


@dataclass(frozen=True)
class ReplaySummary(_Plain):
    """A quarantine replay: per dataset what was replayed, then the promotion of it."""

    pipeline: str
    replayed: list[ReplayCounts] = field(default_factory=list)
    tables: list[TableCounts] = field(default_factory=list)
    gold: list[GoldChange] = field(default_factory=list)


@dataclass(frozen=True)
class RebuildRound(_Plain):
    """One promotion round of a rebuild: per silver table what it re-read, per gold model what it recomputed."""

    index: int
    tables: list[TableCounts] = field(default_factory=list)
    gold: list[GoldChange] = field(default_factory=list)
    bronze: dict[str, int] = field(default_factory=dict)
    """Silver table → the bronze version it has re-read up to after the round."""

    @property
    def line(self) -> str:
        """``round 2: silver.orders read 71 merged 70 rejected 1 (bronze v3); …; gold.daily_sales 4 partitions``."""
        parts = [f"{t.table} read {t.read} merged {t.merged} rejected {t.rejected}"
                 + (f" (bronze v{self.bronze[t.table]})" if t.table in self.bronze else "") for t in self.tables]
        parts += [f"{g.table} {len(g.partitions)} partition(s)" for g in self.gold]
        return f"round {self.index}: " + ("; ".join(parts) or "nothing left")


@dataclass(frozen=True)
class RebuildSummary(_Plain):
    """A rebuild from bronze: the tables emptied (table → the version of its emptying commit), then its rounds."""

    pipeline: str
    source: str
    emptied: dict[str, int] = field(default_factory=dict)
    rounds: list[RebuildRound] = field(default_factory=list)
    rows: dict[str, int] = field(default_factory=dict)
    """Per silver, quarantine and gold table, its rows after the rebuild (from the log's file statistics)."""


@dataclass(frozen=True)
class MaintenanceRow(_Plain):
    """One table's maintenance: files and bytes before and after, files rewritten and vacuumed."""

    table: str
    files_before: int
    files_after: int
    bytes_before: int
    bytes_after: int
    rewritten: int
    zorder: str
    checkpoint: int | None
    vacuumed: int
    change_data_deleted: int
    retention_hours: int | None
    oldest_unconsumed: int | None
    notes: str

    @classmethod
    def of(cls, done: TableMaintenance) -> MaintenanceRow:
        """The row of one table's three maintenance steps."""
        return cls(**done.row())


@dataclass(frozen=True)
class MaintenanceSummary(_Plain):
    """A maintenance run: one row per table, and the files rewritten and vacuumed (or that would be)."""

    pipeline: str
    dry_run: bool
    seconds: float
    tables: list[MaintenanceRow] = field(default_factory=list)
    rewrite: dict[str, list[str]] = field(default_factory=dict)
    vacuum: dict[str, list[str]] = field(default_factory=dict)

    @classmethod
    def of(cls, pipeline: str, done: list[TableMaintenance], *, dry_run: bool, seconds: float) -> MaintenanceSummary:
        """The run over ``done``, one row per table, with the files each rewrote and vacuumed."""
        return cls(
            pipeline=pipeline, dry_run=dry_run, seconds=seconds, tables=[MaintenanceRow.of(d) for d in done],
            rewrite={d.optimized.table: list(d.optimized.files) for d in done if d.optimized.files},
            vacuum={d.vacuumed.table: [*d.vacuumed.files, *d.vacuumed.change_data] for d in done
                    if d.vacuumed.files or d.vacuumed.change_data},
        )


Summary = BatchSummary | BackfillSummary | ReplaySummary | MaintenanceSummary | RebuildSummary


def window_line(summary: BatchSummary) -> str:
    """One window in one line: files, rows read, merged, rejected, duplicates, gold partitions."""
    read, merged, rejected, duplicates, partitions = summary.totals
    return (f"{summary.window}: {summary.files} files, read {read}, merged {merged}, "
            f"rejected {rejected}, duplicates {duplicates}; gold {partitions} partition(s)")


def superseded_message(newer: str) -> str:
    """Why a late scheduled run skipped."""
    return f"late run skipped: {newer} is also due and processes every file landed before its window's end"


def markdown(summary: Summary) -> str:
    """The run's artifact: ``batch-summary``, ``backfill-summary``, ``quarantine-replay`` or ``maintenance-summary``."""
    match summary:
        case BatchSummary():
            return _batch(summary)
        case BackfillSummary():
            return _backfill(summary)
        case ReplaySummary():
            return _replay(summary)
        case MaintenanceSummary():
            return _maintenance(summary)
        case RebuildSummary():
            return _rebuild(summary)
    msg = f"not a summary: {type(summary).__name__}"
    raise TypeError(msg)


def _batch(s: BatchSummary) -> str:
    if s.superseded_by is not None:
        return f"# {s.pipeline} {s.window}\n\n{superseded_message(s.superseded_by)}."
    took = f" in {s.seconds:g} s" if s.seconds is not None else ""
    if s.steps:
        took += " (" + ", ".join(f"{name} {seconds:g} s" for name, seconds in s.steps.items()) + ")"
    lines = [f"# {s.pipeline} {s.window}", "", f"{s.files} files landed; processed{took}.", "",
             "| table | read | merged | duplicates | conflicts | rejected | inserted | updated | files added |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for t in s.tables:
        lines.append(f"| {t.table} | {t.read} | {t.merged} | {t.duplicates} | {t.conflicts} | "
                     f"{t.rejected} | {t.inserted} | {t.updated} | {t.files_added} |")
    for t in s.tables:
        if t.deleted:
            lines += ["", f"Deleted from {t.table}: {t.deleted} keys ({t.removed} rows removed)."]
    for t in s.tables:
        if t.reasons:
            lines += ["", f"Quarantined from {t.table}:", ""]
            for why, n in t.reasons.items():
                example = t.examples.get(why, "").replace("`", "'")
                lines.append(f"- {n} × {why}" + (f": e.g. `{example}`" if example else ""))
    for t in s.tables:
        if t.unknown_fields:
            lines += ["", f"Members that are not columns of {t.table} (records carrying each):", ""]
            lines += [f"- {n} × `{name}`" for name, n in t.unknown_fields.items()]
    for t in s.tables:
        if t.evolved:
            lines += ["", f"Columns added to {t.table} by this batch (unknown_fields: evolve): "
                          + ", ".join(f"`{name}` {dtype}" for name, dtype in t.evolved.items())]
    for g in s.gold:
        lines += ["", f"{g.table}: recomputed {len(g.partitions)} partitions "
                      f"({', '.join(g.partitions)}), {g.rows} rows, {g.files_added} files added."]
    return "\n".join(lines)


def _backfill(s: BackfillSummary) -> str:
    lines = [f"# {s.pipeline} backfill {s.span}", "",
             f"{len(s.windows)} of {s.planned} windows done.", "",
             "| window | files | read | merged | rejected | duplicates | gold partitions |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for w in s.windows:
        lines.append(f"| {w.window} | {w.files} | " + " | ".join(map(str, w.totals)) + " |")
    if s.stopped_at is not None:
        lines += ["", f"**Stopped at {s.stopped_at}**: {s.reason}"]
    return "\n".join(lines)


def _replay(s: ReplaySummary) -> str:
    lines = [f"# {s.pipeline}: quarantine replay", "",
             "| quarantine | not replayed before | pass now | still failing |", "| --- | ---: | ---: | --- |"]
    for r in s.replayed:
        failing = ", ".join(f"{n} × {why}" for why, n in r.still_failing.items()) or "–"
        lines.append(f"| {r.table} | {r.candidates} | {r.replayed} | {failing} |")
    for t in s.tables:
        deleted = f" + deleted {t.deleted}" if t.deleted else ""
        lines.append(f"\n{t.table}: read {t.read} = merged {t.merged}{deleted} + rejected {t.rejected} "
                     f"+ duplicates {t.duplicates} + conflicts {t.conflicts} (inserted {t.inserted}, updated {t.updated})")
    for g in s.gold:
        lines.append(f"\n{g.table}: recomputed {len(g.partitions)} partitions, {g.rows} rows")
    return "\n".join(lines)


def _rebuild(s: RebuildSummary) -> str:
    lines = [f"# {s.pipeline}: rebuild from {s.source}", "",
             f"{len(s.emptied)} tables emptied (one commit each), then {len(s.rounds)} promotion rounds.", "",
             "| table | emptied as version | rows now |", "| --- | ---: | ---: |"]
    lines += [f"| {t} | {v} | {s.rows.get(t, 0)} |" for t, v in s.emptied.items()]
    lines += [f"| {t} | – | {n} |" for t, n in s.rows.items() if t not in s.emptied]
    lines += ["", *(f"- {r.line}" for r in s.rounds)]
    return "\n".join(lines)


def _maintenance(s: MaintenanceSummary) -> str:
    would = " (dry run: nothing changed)" if s.dry_run else ""
    lines = [
        f"# {s.pipeline}: maintenance{would}", "", f"{len(s.tables)} tables in {s.seconds} s", "",
        "| table | files before | files after | bytes before | bytes after | rewritten | z-order | vacuumed | retention (h) | notes |",
        "| --- | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: | --- |",
    ]
    for t in s.tables:
        lines.append(
            f"| {t.table} | {t.files_before} | {t.files_after} | {t.bytes_before} | {t.bytes_after} | "
            f"{t.rewritten} | {t.zorder or '–'} | {t.vacuumed} | {t.retention_hours if t.retention_hours is not None else '–'} | "
            f"{t.notes or ''} |"
        )
    for title, files_of in (("rewritten" if not s.dry_run else "would be rewritten", s.rewrite),
                            ("vacuumed" if not s.dry_run else "would be vacuumed", s.vacuum)):
        for table, files in files_of.items():
            more = f" … and {len(files) - LISTED} more" if len(files) > LISTED else ""
            lines += ["", f"**{table}**, files {title}: " + ", ".join(f"`{f}`" for f in files[:LISTED]) + more]
    return "\n".join(lines)
