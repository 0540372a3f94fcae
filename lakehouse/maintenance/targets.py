"""What maintenance works on: the tables of a pipeline, their consumers, and how it runs."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta

from deltalake.exceptions import CommitFailedError

from lakehouse.commit import gold_app, silver_app
from lakehouse.config import Settings
from lakehouse.errors import CommitConflict, ConfigError
from lakehouse.layers.bronze import bronze_name
from lakehouse.pipeline import Pipeline
from lakehouse.quality.scan_log import scan_results_uri

TARGET_FILE_SIZE = 100 * 1024 * 1024
"""Files are compacted to about 100 MiB: delta-rs' default when ``delta.targetFileSize`` is unset."""


DEFAULT_RETENTION_HOURS = 168
"""Removed files are kept a week at least: the Delta default ``delta.deletedFileRetentionDuration``."""


DEFAULT_MARGIN_HOURS = 1
"""Added to the age of the oldest unconsumed commit (in-flight commits, clock skew)."""


DEFAULT_LOG_RETENTION = timedelta(days=30)
"""``delta.logRetentionDuration`` when a table does not set it."""


@dataclass(frozen=True)
class Consumer:
    """A table that reads another's history, and the application id its progress is under."""

    table: str
    """``silver.orders``."""
    uri: str
    app: str


@dataclass(frozen=True)
class Target:
    """One table to maintain."""

    table: str
    """``layer.name``: ``bronze.orders_raw``, ``quality.scan_results`` …"""
    uri: str
    zorder: tuple[str, ...] = ()
    consumers: tuple[Consumer, ...] = ()


@dataclass(frozen=True)
class Options:
    """How maintenance runs."""

    retention_hours: int = DEFAULT_RETENTION_HOURS
    """The configured retention of removed files; consumers can only make it longer."""
    margin_hours: int = DEFAULT_MARGIN_HOURS
    target_size: int = TARGET_FILE_SIZE
    dry_run: bool = False
    """List what would be done; change nothing."""


def targets(settings: Settings, pipeline: Pipeline) -> list[Target]:
    """Every table of ``pipeline`` (bronze, silver, quarantine, gold) and the scan results.

    Each carries its declared z-order columns and the consumers that read its history:
    a dataset's bronze table is read by its silver table, a silver table by the gold
    models that name it.
    """
    out = []
    for ds in pipeline.datasets:
        name = ds.spec.name
        raw = bronze_name(ds.spec)
        silver_reader = Consumer(f"silver.{name}", settings.table_uri("silver", name), silver_app(name, raw))
        out.append(Target(f"bronze.{raw}", settings.table_uri("bronze", raw), consumers=(silver_reader,)))
    for ds in pipeline.datasets:
        name = ds.spec.name
        readers = tuple(
            Consumer(f"gold.{m.spec.name}", settings.table_uri("gold", m.spec.name), gold_app(m.spec.name, name))
            for m in pipeline.models
            if name in m.inputs
        )
        out.append(Target(f"silver.{name}", settings.table_uri("silver", name), ds.zorder, readers))
    out += [Target(f"quarantine.{ds.spec.name}", settings.table_uri("quarantine", ds.spec.name)) for ds in pipeline.datasets]
    out += [Target(f"gold.{m.spec.name}", settings.table_uri("gold", m.spec.name), m.zorder) for m in pipeline.models]
    out.append(Target("quality.scan_results", scan_results_uri(settings)))
    return out


def select(candidates: list[Target], names: Iterable[str]) -> list[Target]:
    """The targets named ``layer.table`` (or just ``table``: every layer's); unknown names raise."""
    wanted = list(names)
    chosen = [t for t in candidates if any(n in (t.table, t.table.split(".", 1)[1]) for n in wanted)]
    unknown = [n for n in wanted if not any(n in (t.table, t.table.split(".", 1)[1]) for t in candidates)]
    if unknown:
        msg = f"no table {', '.join(unknown)}; tables: {', '.join(t.table for t in candidates)}"
        raise ConfigError(msg)
    return chosen


@contextmanager
def conflicts(target: Target) -> Iterator[None]:
    """A concurrent commit that conflicts is a :class:`CommitConflict` (transient: retry the step)."""
    try:
        yield
    except CommitFailedError as exc:
        msg = f"{target.table}: maintenance conflicted with another writer: {exc}"
        raise CommitConflict(msg) from exc


# ----------------------------------------------------------------------------- optimize
