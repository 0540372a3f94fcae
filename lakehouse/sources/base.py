"""One shape for every source read from a cursor: an HTTP API, a SQL database, a stream.

A :class:`RecordSource` reads what is new after a :class:`Cursor` and yields it as
:class:`Batch` es of records, each with the cursor *after* it. Bronze commits each batch
with its cursor in the same Delta commit (commit metadata ``lakehouse.cursor``, read back
through :func:`lakehouse.commit.latest_metadata`), so a crash anywhere resumes exactly
once: a batch whose commit landed is never read again, one whose commit did not land is
read again from the cursor before it.

A record is one row of :data:`RECORDS`: its JSON object text (``_raw``, typed by silver
like a JSONL line), where it came from (``_source_position``: an API cursor or page, a
watermark and key, a shard and sequence number), a version (``_source_version``), its
number inside the position (``_line``, from 1) and when the source says it arrived
(``_landed_at``). Landing files (:mod:`lakehouse.sources.files`) have the same columns.

A kind of source is a subclass with ``kind`` set and three hooks (:meth:`RecordSource.start`,
:meth:`RecordSource.cursor_from`, :meth:`RecordSource.read`; :meth:`RecordSource.probe` and
:meth:`RecordSource.close` where the system needs them), plus a factory registered
with :func:`register`; its declaration model lives in :mod:`lakehouse.sources.declared`.
Each system has a local sibling the tests use (a loopback HTTP server, SQLite, moto).
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar, Generic, TypeVar

import polars as pl

from lakehouse.config import Settings
from lakehouse.errors import ConfigError
from lakehouse.sources.files import LINE_SCHEMA
from lakehouse.specs import Dataset

RECORDS = LINE_SCHEMA
"""The columns of a batch of records: ``_raw``, ``_source_position``, ``_source_version``, ``_line``, ``_landed_at``."""


class Cursor(ABC):
    """Where a source stands; stored as JSON in the bronze commit that reached it."""

    @abstractmethod
    def to_json(self) -> dict[str, Any]:
        """The cursor as JSON values (for the commit's metadata)."""


C = TypeVar("C", bound=Cursor)


@dataclass(frozen=True)
class Limit:
    """The bounds of one batch (one bronze commit)."""

    records: int = 100_000
    bytes: int = 256 * 2**20
    """Of record text (``_raw``), about: a batch stops at the first record past it."""


@dataclass(frozen=True)
class Batch(Generic[C]):
    """Records read after one cursor, and the cursor after them."""

    records: pl.DataFrame
    """:data:`RECORDS` columns."""
    cursor: C
    details: dict[str, Any] = field(default_factory=dict)
    """What the bronze commit's metadata says about the batch (pages, shards …): small JSON values."""


class RecordSource(ABC, Generic[C]):
    """A system that a dataset reads from a cursor (subclasses set :attr:`kind`)."""

    kind: ClassVar[str]

    @abstractmethod
    def start(self) -> C:
        """The cursor before anything was read."""

    @abstractmethod
    def cursor_from(self, data: dict[str, Any]) -> C:
        """The cursor that :meth:`Cursor.to_json` wrote."""

    @abstractmethod
    def read(self, cursor: C, *, limit: Limit, until: datetime) -> Iterator[Batch[C]]:
        """Batches of what is new after ``cursor``, each within ``limit``, in order.

        ``until`` is the window's end: what the source dates later belongs to a later window
        (where the source can tell). A batch's cursor is where the next one starts; the
        caller commits each batch before it asks for the next, and may stop between any two.
        Errors that a retry can cure raise :class:`lakehouse.errors.TransientError` (or a
        subclass); a refusal (a 4xx, a bad credential, a bad declaration) raises a terminal
        :class:`lakehouse.errors.LakehouseError` and advances nothing.
        """

    def describe(self) -> str:
        """Where the records come from, for ``_source`` and logs: never a credential."""
        return self.kind

    def probe(self) -> None:  # noqa: B027 (a hook: for most sources opening is the check)
        """Reach the system once without reading from a cursor: raise what :meth:`read` would if it is
        unreachable or refuses the credential (``lakehouse run`` calls it for every source first)."""

    def close(self) -> None:  # noqa: B027 (a hook: most sources hold nothing open)
        """Release connections (called once the ingest is done)."""


Factory = Callable[[Dataset, Settings], RecordSource[Any]]

_FACTORIES: dict[str, Factory] = {}
_MODULES = {"http_api": "lakehouse.sources.http", "sql": "lakehouse.sources.sql", "kinesis": "lakehouse.sources.kinesis"}
"""Where each kind's reader lives: imported only when a dataset of that kind is read."""


def register(kind: str) -> Callable[[Factory], Factory]:
    """Register the factory of ``kind`` (a decorator): ``factory(dataset, settings) -> RecordSource``."""

    def decorate(factory: Factory) -> Factory:
        _FACTORIES[kind] = factory
        return factory

    return decorate


def open_source(dataset: Dataset, settings: Settings) -> RecordSource[Any]:
    """The reader of ``dataset``'s source (its kind's module is imported on first use)."""
    if dataset.kind not in _FACTORIES and dataset.kind in _MODULES:
        importlib.import_module(_MODULES[dataset.kind])
    factory = _FACTORIES.get(dataset.kind)
    if factory is None:
        msg = f"{dataset.spec.qualified_name}: no reader for source kind {dataset.kind!r} (kinds: {', '.join(sorted(_FACTORIES)) or 'none'})"
        raise ConfigError(msg)
    return factory(dataset, settings)


def records(raw: list[str] | pl.Series, *, position: str | pl.Series, version: str | pl.Series = "",
            landed_at: datetime, first_line: int = 1) -> pl.DataFrame:
    """A batch's :data:`RECORDS` from record texts that share (or each have) a position and version."""
    frame = pl.DataFrame({"_raw": raw}, schema={"_raw": pl.String})

    def column(value: str | pl.Series, name: str) -> pl.Series | pl.Expr:
        return value.alias(name).cast(pl.String) if isinstance(value, pl.Series) else pl.lit(value, pl.String).alias(name)

    return frame.with_columns(
        column(position, "_source_position"),
        column(version, "_source_version"),
        pl.int_range(first_line, first_line + frame.height, dtype=pl.Int64).alias("_line"),
        pl.lit(landed_at).cast(pl.Datetime("us", "UTC")).alias("_landed_at"),
    ).select(list(RECORDS))
