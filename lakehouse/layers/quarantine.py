"""Quarantine: the rows a promotion rejected, with the rule they broke and every reason in
words, appended to ``<warehouse>/quarantine/<table>`` once per consumed bronze version."""

from __future__ import annotations

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
from deltalake import CommitProperties, DeltaTable, write_deltalake

from lakehouse.commit import (
    ensure_table,
    quarantine_app,
    write_once,
)
from lakehouse.config import Settings
from lakehouse.errors import CountsMismatch
from lakehouse.layers.bronze import BRONZE_VERSION, bronze_name
from lakehouse.specs import TableSpec
from lakehouse.storage import storage_options

QUARANTINE_SCHEMA = pa.schema(
    [
        pa.field("_table", pa.large_string()),
        pa.field("_rule", pa.large_string()),
        pa.field("_reject_reason", pa.large_string()),
        pa.field("_raw", pa.large_string()),
        pa.field("_batch_id", pa.large_string()),
        pa.field("_source_position", pa.large_string()),
        pa.field("_line", pa.int64()),
        pa.field("_landed_at", pa.timestamp("us", tz="UTC")),
    ]
)


def append(settings: Settings, spec: TableSpec, rejected: pl.DataFrame, *, bronze_to: int, expected: int) -> None:
    """Append the rejected rows with their reasons, once per consumed bronze version.

    The quarantine table records, as its own application transaction, the last bronze
    version whose rejects it holds; only the rejects of later bronze versions are
    written. So whichever promotion consumes a bronze version next (a re-run, the next
    window after a crash between this commit and silver's, a concurrent run), its rejects
    are written once.
    """
    if rejected.is_empty():
        return
    uri = settings.table_uri("quarantine", spec.name)
    options = storage_options(settings)
    app = quarantine_app(spec.name, bronze_name(spec))
    existing = ensure_table(uri, QUARANTINE_SCHEMA, options)
    rows = (
        rejected.with_columns(pl.lit(spec.qualified_name).alias("_table"), _reason_kind().alias("_rule"))
        .select(*QUARANTINE_SCHEMA.names, BRONZE_VERSION)
        .to_arrow()
        .cast(QUARANTINE_SCHEMA.append(pa.field(BRONZE_VERSION, pa.int64())))
    )

    earlier: list[int] = []

    def write(table: DeltaTable, props: CommitProperties) -> None:
        done = table.transaction_version(app)
        version = pc.field(BRONZE_VERSION)
        new = rows if done is None else rows.filter(version.is_null() | (version > done))
        earlier.append(rows.num_rows - new.num_rows)
        if new.num_rows:
            write_deltalake(table, new.drop_columns([BRONZE_VERSION]), mode="append", commit_properties=props)

    landed = write_once(uri, options, transactions={app: bronze_to}, write=write, table=existing)
    if landed.already or not earlier:
        return
    written = landed.rows_added or 0
    if written + earlier[-1] != expected:
        msg = (
            f"{spec.qualified_name}: rejected {expected}, but the quarantine commit wrote {written} "
            f"and held {earlier[-1]} from an earlier commit; silver was not committed"
        )
        raise CountsMismatch(msg)


def _reason_kind() -> pl.Expr:
    """The rule a row broke first, its value details left out: ``unknown product_id``."""
    return pl.col("_reject_reason").str.split("; ").list.first().str.replace(r"[:'].*$", "").str.strip_chars()


def reason_counts(rejected: pl.DataFrame) -> dict[str, int]:
    """How many rows were rejected for each reason, the value details left out."""
    if rejected.is_empty():
        return {}
    kinds = (
        rejected.select(_reason_kind().alias("reason"))
        .group_by("reason")
        .len()
        .sort(["len", "reason"], descending=[True, False])
    )
    return dict(kinds.iter_rows())


def reason_examples(rejected: pl.DataFrame, width: int = 120) -> dict[str, str]:
    """The first rejected row of each reason: ``<full reason> in <raw text, shortened>``."""
    if rejected.is_empty():
        return {}
    first = (
        rejected.with_columns(_reason_kind().alias("reason"))
        .unique(subset=["reason"], keep="first", maintain_order=True)
        .select(
            "reason",
            pl.format(
                "{} in {}", pl.col("_reject_reason"),
                pl.when(pl.col("_raw").str.len_chars() > width)
                .then(pl.col("_raw").str.slice(0, width) + pl.lit("…"))
                .otherwise(pl.col("_raw")),
            ),
        )
    )
    return dict(first.iter_rows())
