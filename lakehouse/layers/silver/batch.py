"""What a silver promotion carries between its two steps: the batch, its counts, its result."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

import polars as pl

from lakehouse.commit import (
    silver_app,
)
from lakehouse.config import Settings
from lakehouse.errors import CountsMismatch, LakehouseError
from lakehouse.layers.bronze import bronze_name
from lakehouse.quality import GateResult
from lakehouse.specs import Dataset, TableSpec


@dataclass(frozen=True)
class Counts:
    """Conservation of one promotion: ``read == merged + deleted + rejected + duplicates + conflicts``."""

    read: int
    merged: int
    """Keys whose latest version is a row: inserted or updated (or older than silver's row)."""
    rejected: int
    duplicates: int
    """Rows collapsed into their key's winner: identical copies and older versions."""
    superseded: int = 0
    """Bronze rows of a file that was delivered again later (only the latest counts)."""
    conflicts: int = 0
    """Rows with the winner's key and ordering value but another payload (the later delivery won)."""
    deleted: int = 0
    """Keys whose latest version is a delete: their silver row is removed (if silver holds an older one)."""

    def check(self) -> None:
        """Raise :class:`CountsMismatch` unless every row read is merged, a delete, rejected, a duplicate or a conflict."""
        if self.read != self.merged + self.deleted + self.rejected + self.duplicates + self.conflicts:
            msg = (
                f"rows do not add up: read {self.read} != merged {self.merged} + deleted {self.deleted} + "
                f"rejected {self.rejected} + duplicates {self.duplicates} + conflicts {self.conflicts}"
            )
            raise LakehouseError(msg)

    def reconcile(self, table: str, *, bronze_rows: int | None, keys: int) -> None:
        """Check the counts against figures not derived from them, before anything is committed.

        ``bronze_rows``: the rows bronze's own commits say they added in the consumed
        versions (their ``num_added_rows``; None when a commit does not say): every one is
        read or superseded. ``keys``: the distinct business keys of the clean rows: each
        is merged (or deleted) once, so a collapse that lost or doubled a key is caught here.
        """
        if bronze_rows is not None and self.read + self.superseded != bronze_rows:
            msg = (
                f"{table}: bronze's commits added {bronze_rows} rows, but read {self.read} + "
                f"superseded {self.superseded} = {self.read + self.superseded}; nothing was committed"
            )
            raise CountsMismatch(msg)
        if self.merged + self.deleted != keys:
            msg = (f"{table}: {keys} distinct keys passed the checks, but {self.merged} rows would be merged "
                   f"and {self.deleted} deleted; nothing was committed")
            raise CountsMismatch(msg)


@dataclass(frozen=True)
class SilverBatch:
    """A bronze increment, typed and gated, ready to commit."""

    spec: TableSpec
    bronze_from: int
    bronze_to: int
    valid: pl.DataFrame
    rejected: pl.DataFrame
    counts: Counts
    gate: GateResult
    more: bool = False
    """Bronze holds versions after ``bronze_to`` (a backlog larger than one batch)."""
    unknown_fields: Mapping[str, int] | None = None
    """Records per member that is not a column (``AMOUNT (looks like amount)``: a variant of one)."""
    evolved: Mapping[str, str] | None = None
    """Columns this batch adds to the silver table (``unknown_fields: evolve``): name → type."""
    dataset: Dataset | None = None
    """What the batch was prepared for, so that a stale batch can be prepared again (None: never)."""
    upstream: Mapping[str, SilverBatch] | None = None
    now: datetime | None = None
    since: int | None = None
    """The bronze version silver had consumed when the batch was prepared (None: never; -1: reset by a rebuild)."""

    @property
    def consumed(self) -> dict[str, int]:
        """Application id → the bronze version this batch takes silver to."""
        return {silver_app_of(self.spec): self.bronze_to}


@dataclass(frozen=True)
class SilverResult:
    """What a silver merge did: counts, rows inserted, updated and unchanged, rejects by reason."""

    table: str
    bronze_version: int | None
    counts: Counts | None
    version: int | None
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    """Merged rows and deletes that matched a silver row at least as new, and deletes of keys silver
    does not hold (merged + deleted = inserted + updated + removed + unchanged)."""
    removed: int = 0
    """Silver rows the merge deleted (a delete newer than the row)."""
    skipped: bool = False
    reasons: dict[str, int] | None = None
    """Rejected rows per reason (the first reason of each row)."""
    examples: dict[str, str] | None = None
    """One rejected row per reason: its full reason and the start of its raw text."""
    files_added: int = 0
    """Data files the merge added to the silver table."""
    unknown_fields: Mapping[str, int] | None = None
    """Records per member that is not a column, as in :attr:`SilverBatch.unknown_fields`."""
    evolved: Mapping[str, str] | None = None
    """Columns the merge's commit added to the table, as in :attr:`SilverBatch.evolved`."""


def silver_uri(settings: Settings, spec: TableSpec) -> str:
    """The URI of the dataset's silver table."""
    return settings.table_uri("silver", spec.name)


def silver_app_of(spec: TableSpec) -> str:
    """The application id of the dataset's bronze→silver promotion (:mod:`lakehouse.commit`)."""
    return silver_app(spec.name, bronze_name(spec))
