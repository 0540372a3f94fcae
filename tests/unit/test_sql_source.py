"""The SQL source (``kind: sql``) against real SQLite files: the cursor, the batches, the values,
the errors, the declaration; and deletes reaching silver (from SQL and from a JSONL file).

Bronze and silver write real Delta tables in a local warehouse; no part is faked.
"""

from __future__ import annotations

import json
import logging
import socket
import sqlite3
import textwrap
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import polars as pl
import pytest
import sqlalchemy as sa

from flows.summary import TableCounts
from lakehouse.config import Settings
from lakehouse.declaration.build import parse
from lakehouse.errors import ConfigError, SourceUnavailable, is_transient
from lakehouse.layers import bronze, silver
from lakehouse.sources.base import Limit, open_source
from lakehouse.sources.records import DELETE_MEMBER
from lakehouse.sources.sql import SqlSource
from lakehouse.sources.sql_rows import SqlCursor
from lakehouse.specs import Dataset
from lakehouse.storage import LocalStore
from lakehouse.window import window_ending_at

T0 = datetime(2026, 1, 1, 12, 0)
"""A naive UTC time, as SQLite holds it."""
END = datetime(2026, 1, 2, tzinfo=UTC)
QUARTER = timedelta(minutes=15)

YAML = """
pipelines:
  p:
    sources:
      db:
        kind: sql
        url: {url}
        max_batch_records: {limit}
        deletes:
          items: {{column: is_deleted, tombstones: {{table: items_gone, watermark: gone_at}}}}
    datasets:
      items:
        source: db
        columns: {{item_id: {{type: string, nullable: false}}, qty: int64, price: "decimal(12,2)",
                  fragile: bool, updated_at: {{type: timestamp, nullable: false}}}}
        key: item_id
        order_by: updated_at
        checks: [{{range: qty, min: 0, max: 100}}]
"""

meta = sa.MetaData()
ITEMS = sa.Table(
    "items", meta,
    sa.Column("item_id", sa.String, primary_key=True),
    sa.Column("qty", sa.Integer),
    sa.Column("price", sa.Numeric(12, 2)),
    sa.Column("fragile", sa.Integer),  # 0/1: silver's bool column takes it as a boolean
    sa.Column("secret_note", sa.String),  # not declared: never read
    sa.Column("updated_at", sa.DateTime, nullable=False),
    sa.Column("is_deleted", sa.Boolean, nullable=False, default=False),
)
GONE = sa.Table("items_gone", meta, sa.Column("item_id", sa.String), sa.Column("gone_at", sa.DateTime))


@pytest.fixture
def db(tmp_path: Path) -> Iterator[sa.Engine]:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'shop.db'}")
    meta.create_all(engine)
    yield engine
    engine.dispose()


def dataset(engine: sa.Engine, *, limit: int = 100, yaml: str = YAML) -> Dataset:
    return parse(yaml.format(url=engine.url, limit=limit)).pipeline("p").dataset("items")


def put(engine: sa.Engine, rows: list[dict[str, object]]) -> None:
    with engine.begin() as conn:
        for row in rows:
            values = {"qty": 1, "price": Decimal("1.50"), "fragile": 0, "secret_note": "hush", "is_deleted": False, **row}
            conn.execute(sa.delete(ITEMS).where(ITEMS.c.item_id == values["item_id"]))
            conn.execute(sa.insert(ITEMS).values(values))


def read_all(source: SqlSource, cursor: SqlCursor | None = None, *, records: int = 100) -> list[pl.DataFrame]:
    batches = source.read(cursor or source.start(), limit=Limit(records=records), until=END)
    return [b.records for b in batches]


def test_a_thousand_rows_on_one_timestamp_are_read_once_each_in_batches_of_a_hundred(db: sa.Engine) -> None:
    put(db, [{"item_id": f"I{i:04d}", "updated_at": T0} for i in range(1000)])
    source = SqlSource(dataset(db))
    batches = list(source.read(source.start(), limit=Limit(records=100), until=END))
    assert [b.records.height for b in batches] == [100] * 10
    keys = pl.concat([b.records for b in batches]).get_column("_raw").str.json_path_match("$.item_id")
    assert keys.n_unique() == 1000 and keys.len() == 1000

    # stopped after three batches, a reader that starts from the third's cursor reads the other 700
    resumed = SqlSource(dataset(db)).cursor_from(batches[2].cursor.to_json())
    rest = pl.concat(read_all(source, resumed))
    assert rest.height == 700
    assert set(rest.get_column("_raw").str.json_path_match("$.item_id")) == set(keys.slice(300))
    source.close()


def test_the_key_breaks_ties_and_later_rows_are_read_from_the_cursor_and_none_twice(db: sa.Engine) -> None:
    put(db, [{"item_id": k, "updated_at": T0} for k in ("B", "A", "C")])
    source = SqlSource(dataset(db))
    first = list(source.read(source.start(), limit=Limit(records=2), until=END))
    assert [json.loads(r)["item_id"] for b in first for r in b.records.get_column("_raw")] == ["A", "B", "C"]
    cursor = first[-1].cursor
    # a row at the same timestamp with a smaller key arrived after the read: a later watermark is what a
    # writer must give it (the cursor is past (T0, C)); rows after it are read, nothing again
    put(db, [{"item_id": "A", "qty": 5, "updated_at": T0 + timedelta(seconds=1)},
             {"item_id": "D", "updated_at": T0}])
    (again,) = list(source.read(cursor, limit=Limit(records=100), until=END))
    assert [json.loads(r)["item_id"] for r in again.records.get_column("_raw")] == ["D", "A"]
    assert read_all(source, source.cursor_from(again.cursor.to_json())) == []  # and nothing after it


def test_a_composite_key_breaks_ties_column_by_column(tmp_path: Path) -> None:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'pairs.db'}")
    pairs = sa.Table("pairs", sa.MetaData(), sa.Column("a", sa.String, primary_key=True),
                     sa.Column("b", sa.Integer, primary_key=True), sa.Column("updated_at", sa.DateTime))
    pairs.metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(sa.insert(pairs), [{"a": a, "b": b, "updated_at": T0} for a in ("x", "y", "z") for b in (10, 2, 1)])
    yaml = (YAML.replace("order_by: updated_at\n", "order_by: updated_at\n        resource: pairs\n")
            .replace("key: item_id", "key: [a, b]")
            .replace("columns: {{item_id: {{type: string, nullable: false}}, qty: int64, price: \"decimal(12,2)\",\n"
                     "                  fragile: bool, updated_at: {{type: timestamp, nullable: false}}}}",
                     "columns: {{a: string, b: int64, updated_at: timestamp}}")
            .replace("checks: [{{range: qty, min: 0, max: 100}}]", ""))
    source = SqlSource(dataset(engine, yaml=yaml))
    batches = list(source.read(source.start(), limit=Limit(records=2), until=END))
    got = [(r["a"], r["b"]) for b in batches for r in map(json.loads, b.records.get_column("_raw"))]
    assert got == [(a, b) for a in ("x", "y", "z") for b in (1, 2, 10)]  # b compared as a number, not as text
    assert [b.records.height for b in batches] == [2, 2, 2, 2, 1]
    assert batches[1].cursor.to_json()["rows"] == {"watermark": {"datetime": "2026-01-01T12:00:00"}, "key": ["y", 1]}


def test_lag_keeps_the_newest_rows_for_a_later_window(db: sa.Engine) -> None:
    put(db, [{"item_id": "OLD", "updated_at": END.replace(tzinfo=None) - timedelta(minutes=5)},
             {"item_id": "NEW", "updated_at": END.replace(tzinfo=None) - timedelta(seconds=20)}])
    source = SqlSource(dataset(db, yaml=YAML.replace("max_batch_records:", "lag: 30s\n        max_batch_records:")))
    (first,) = list(source.read(source.start(), limit=Limit(), until=END))
    assert [json.loads(r)["item_id"] for r in first.records.get_column("_raw")] == ["OLD"]
    (then,) = list(source.read(first.cursor, limit=Limit(), until=END + QUARTER))
    assert [json.loads(r)["item_id"] for r in then.records.get_column("_raw")] == ["NEW"]


def test_records_are_json_as_silver_types_them_and_only_declared_columns_are_read(db: sa.Engine) -> None:
    put(db, [{"item_id": "I1", "qty": 3, "price": Decimal("19.99"), "fragile": 1,
              "updated_at": datetime(2026, 1, 1, 12, 0, 0, 250000)}])
    (frame,) = read_all(SqlSource(dataset(db)))
    record = json.loads(frame.item(0, "_raw"))
    assert record == {"item_id": "I1", "qty": 3, "price": "19.99", "fragile": True,
                      "updated_at": "2026-01-01T12:00:00.250000Z"}  # no secret_note, no is_deleted
    assert frame.item(0, "_source_position") == "items@2026-01-01T12:00:00.250000Z/I1"


def test_a_batch_is_bounded_by_bytes_too_and_rows_past_the_window_wait(db: sa.Engine) -> None:
    put(db, [{"item_id": f"I{i}", "updated_at": T0} for i in range(6)])
    put(db, [{"item_id": "LATE", "updated_at": END.replace(tzinfo=None) + timedelta(seconds=1)}])
    source = SqlSource(dataset(db))
    size = len(json.dumps({"item_id": "I0", "qty": 1, "price": "1.50", "fragile": False,
                           "updated_at": "2026-01-01T12:00:00Z"}, separators=(",", ":")))
    batches = list(source.read(source.start(), limit=Limit(records=100, bytes=2 * size), until=END))
    assert [b.records.height for b in batches] == [2, 2, 2]  # LATE is after the window's end


def test_soft_deletes_and_tombstones_are_records_marked_as_deletes(db: sa.Engine) -> None:
    put(db, [{"item_id": "I1", "updated_at": T0}, {"item_id": "I2", "is_deleted": True, "updated_at": T0}])
    with db.begin() as conn:
        conn.execute(sa.insert(GONE).values(item_id="I9", gone_at=T0 + timedelta(minutes=1)))
    source = SqlSource(dataset(db))
    batches = list(source.read(source.start(), limit=Limit(records=100), until=END))
    raws = [json.loads(r) for b in batches for r in b.records.get_column("_raw")]
    assert [(r["item_id"], r.get(DELETE_MEMBER)) for r in raws] == [("I1", None), ("I2", True), ("I9", True)]
    assert raws[2] == {"item_id": "I9", "updated_at": "2026-01-01T12:01:00Z", DELETE_MEMBER: True}
    assert [b.details["deletes"] for b in batches] == [1, 1]
    cursor = batches[-1].cursor.to_json()
    assert cursor["tombstones"]["key"] == ["I9"] and cursor["rows"]["key"] == ["I2"]


def test_deletes_reach_silver_newest_version_wins_and_the_counts_add_up(tmp_path: Path, monkeypatch, db: sa.Engine) -> None:
    monkeypatch.setenv("LAKEHOUSE_WAREHOUSE", str(tmp_path / "wh"))
    settings, landing, ds = Settings(), LocalStore(tmp_path / "landing"), dataset(db, limit=2)

    def window(k: int) -> None:
        bronze.ingest(settings, ds, window_ending_at(END + k * QUARTER, QUARTER), landing=landing)
        batch = silver.prepare(settings, ds, {})
        assert batch is not None
        silver.commit(settings, batch)

    put(db, [{"item_id": f"I{i}", "qty": i, "updated_at": T0} for i in range(4)])
    window(1)
    later = T0 + timedelta(minutes=5)
    put(db, [{"item_id": "I1", "is_deleted": True, "updated_at": later},  # soft delete: gone
             {"item_id": "I2", "qty": 20, "updated_at": later}])          # updated, then deleted below with an older time
    with db.begin() as conn:
        conn.execute(sa.delete(ITEMS).where(ITEMS.c.item_id == "I3"))
        conn.execute(sa.insert(GONE), [
            {"item_id": "I3", "gone_at": later},                             # hard delete: gone
            {"item_id": "I2", "gone_at": T0 + timedelta(minutes=1)},         # older than I2's update: I2 stays
            {"item_id": "NEVER", "gone_at": later},                          # a key silver never held: nothing
        ])
    bronze.ingest(settings, ds, window_ending_at(END + 2 * QUARTER, QUARTER), landing=landing)
    batch = silver.prepare(settings, ds, {})
    assert batch is not None
    c = batch.counts
    assert (c.read, c.merged, c.deleted, c.duplicates, c.rejected) == (5, 1, 3, 1, 0)  # I2's delete collapsed into its update
    result = silver.commit(settings, batch)
    assert (result.updated, result.removed, result.inserted, result.unchanged) == (1, 2, 0, 1)
    shown = TableCounts.of(result)
    assert (shown.deleted, shown.removed) == (3, 2)
    table = pl.read_delta(settings.table_uri("silver", "items")).sort("item_id")
    assert table.select("item_id", "qty").rows() == [("I0", 0), ("I2", 20)]

    # a delete that arrives after the row it removed was re-created with a newer time does not remove it
    put(db, [{"item_id": "I3", "qty": 33, "updated_at": later + timedelta(minutes=5)}])
    with db.begin() as conn:
        conn.execute(sa.insert(GONE).values(item_id="I0", gone_at=T0 - timedelta(days=1)))  # older than I0's row
    window(3)
    table = pl.read_delta(settings.table_uri("silver", "items")).sort("item_id")
    assert table.select("item_id", "qty").rows() == [("I0", 0), ("I2", 20), ("I3", 33)]
    assert "_deleted" not in table.columns


def test_a_landing_file_can_carry_deletes_too(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("LAKEHOUSE_WAREHOUSE", str(tmp_path / "wh"))
    monkeypatch.setenv("LAKEHOUSE_LANDING", str(tmp_path / "landing"))
    settings, landing = Settings(), LocalStore(tmp_path / "landing")
    ds = parse("""
pipelines:
  p:
    sources: {drops: {prefix: drops}}
    datasets:
      items:
        source: drops
        columns: {item_id: string, qty: {type: int64, nullable: false}, updated_at: timestamp}
        key: item_id
        order_by: updated_at
""").pipeline("p").dataset("items")
    lines = [{"item_id": "A", "qty": 1, "updated_at": "2026-01-01T00:00:00Z"},
             {"item_id": "B", "qty": 2, "updated_at": "2026-01-01T00:00:00Z"}]
    landing.put("drops/items/2026/01/01/00/01/a.jsonl", "\n".join(map(json.dumps, lines)).encode())
    deletes = [{"item_id": "A", "updated_at": "2026-01-01T00:02:00Z", DELETE_MEMBER: True},  # no qty: a delete needs none
               {"updated_at": "2026-01-01T00:02:00Z", DELETE_MEMBER: True}]                  # no key: rejected
    landing.put("drops/items/2026/01/01/00/03/b.jsonl", "\n".join(map(json.dumps, deletes)).encode())
    bronze.ingest(settings, ds, window_ending_at(datetime(2026, 1, 1, 0, 15, tzinfo=UTC), QUARTER), landing=landing)
    batch = silver.prepare(settings, ds, {})
    assert batch is not None and (batch.counts.merged, batch.counts.deleted, batch.counts.rejected) == (1, 1, 1)
    assert batch.rejected.item(0, "_reject_reason") == "missing item_id: a delete needs its key and ordering value"
    silver.commit(settings, batch)
    assert pl.read_delta(settings.table_uri("silver", "items")).get_column("item_id").to_list() == ["B"]


# ----------------------------------------------------------------------------- errors


def test_a_missing_table_or_column_or_file_is_a_configuration_error(db: sa.Engine, tmp_path: Path) -> None:
    ds = dataset(db)
    with pytest.raises(ConfigError, match=r"the database has no table 'stock', the table of dataset items"):
        read_all(SqlSource(dataset(db, yaml=YAML.replace("order_by: updated_at", "order_by: updated_at\n        resource: stock"))))
    with pytest.raises(ConfigError, match=r"table 'items' has no column 'colour' \(its columns: item_id, qty"):
        read_all(SqlSource(dataset(db, yaml=YAML.replace("fragile: bool,", "fragile: bool, colour: string,"))))
    with db.begin() as conn:
        conn.execute(sa.text("DROP TABLE items_gone"))
    with pytest.raises(ConfigError, match=r"no table 'items_gone', the tombstone table of items"):
        read_all(SqlSource(ds))
    with pytest.raises(ConfigError, match=r"the SQLite database file .*nowhere.db does not exist"):
        SqlSource(dataset(db, yaml=YAML.replace("{url}", f"sqlite:///{tmp_path / 'nowhere.db'}")))
    with pytest.raises(ConfigError, match=r"'it-ems' is not a valid table name"):
        SqlSource(dataset(db, yaml=YAML.replace("order_by: updated_at", "order_by: updated_at\n        resource: it-ems")))


def test_an_unreachable_database_is_transient_and_no_error_or_description_holds_the_password(monkeypatch, caplog) -> None:
    with socket.socket() as s:  # a port that nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("SHOP_DB_PASSWORD_FOR_TEST", "pa55-w0rd-xyz")
    yaml = YAML.replace("url: {url}", f"url: postgresql+psycopg://reader@127.0.0.1:{port}/shop\n        password: {{{{env: SHOP_DB_PASSWORD_FOR_TEST}}}}\n        connect_args: {{{{connect_timeout: 2}}}}")
    ds = parse(yaml.format(limit=10)).pipeline("p").dataset("items")
    assert "pa55" not in repr(ds) and "pa55" not in str(ds.connection)
    source = open_source(ds, Settings())
    assert source.describe() == f"sql:postgresql://127.0.0.1:{port}/shop/items"
    caplog.set_level(logging.DEBUG)
    with pytest.raises(SourceUnavailable) as down:
        read_all(source)  # pyright: ignore[reportArgumentType]
    assert is_transient(down.value)
    assert "Connection refused" in str(down.value) or "connection" in str(down.value).lower()
    assert down.value.__cause__ is None and down.value.__suppress_context__  # the driver's error is not chained
    assert "pa55" not in str(down.value) and "pa55" not in repr(down.value) and "pa55" not in caplog.text


def test_a_locked_database_is_transient(db: sa.Engine) -> None:
    put(db, [{"item_id": "I1", "updated_at": T0}])
    writer = sqlite3.connect(str(db.url.database), isolation_level=None)
    writer.execute("BEGIN EXCLUSIVE")  # another writer holds the file: readers wait, then give up
    try:
        yaml = YAML.replace("max_batch_records:", "connect_args: {{timeout: 0.2}}\n        max_batch_records:")
        with pytest.raises(SourceUnavailable, match=r"sql:sqlite:.*/items: OperationalError: database is locked") as locked:
            read_all(SqlSource(dataset(db, yaml=yaml)))
        assert is_transient(locked.value)
    finally:
        writer.execute("ROLLBACK")
        writer.close()
    assert read_all(SqlSource(dataset(db)))[0].height == 1  # and once it is free, the read goes through


def test_a_malformed_sql_declaration_is_explained_with_its_path() -> None:
    base = YAML.format(url="sqlite:///shop.db", limit=10)
    cases = {
        "url: sqlite:///shop.db": ("url: postgresql://reader:hunter2@db/shop", "sources.db.url: the URL holds a password"),
        "items: {column: is_deleted, tombstones: {table: items_gone, watermark: gone_at}}": (
            "items: {}", "sources.db.deletes.items: declare how deletes are seen"),
        "max_batch_records: 10\n": ("max_batch_records: 10\n        schema: 'my schema'\n", "sources.db.schema: 'my schema' is not a valid schema name"),
        "deletes:": ("password: hunter2\n        deletes:", "sources.db.password: Input should be a valid dictionary"),
        "watermark: gone_at": ("watermark: gone_at, when: x", "sources.db.deletes.items.tombstones.when: unknown field"),
    }
    for old, (new, expected) in cases.items():
        with pytest.raises(ConfigError) as bad:
            parse(base.replace(old, new, 1))
        assert f"pipelines.p.{expected}" in str(bad.value), str(bad.value)
        assert "hunter2" not in str(bad.value)
    with pytest.raises(ConfigError, match=r"url: required field is missing"):
        parse(base.replace("url: sqlite:///shop.db", ""))


def test_the_readmes_sql_example_is_a_valid_declaration(monkeypatch) -> None:
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    part = readme.split("#### SQL database source", 1)[1]
    example = part.split("```yaml\n", 1)[1].split("```", 1)[0]
    pipeline = parse("pipelines:\n  p:\n" + textwrap.indent(example, "    ")).pipeline("p")
    ds = pipeline.dataset("customers")
    decl = ds.connection
    assert (ds.kind, ds.resource, decl.db_schema, decl.lag, str(decl.password)) == (
        "sql", "customers", "public", timedelta(seconds=30), "env:SHOP_DB_PASSWORD")
    assert decl.deletes["products"].tombstones.table == "products_deleted"
    documented = {line.split(":")[0].strip() for line in example.splitlines() if line.startswith("    ")}
    assert {f.alias or n for n, f in type(decl).model_fields.items()} - {"kind"} <= documented  # every field shown


def test_lakehouse_validate_explains_a_sql_source_and_never_echoes_its_url(tmp_path: Path, monkeypatch) -> None:
    from typer.testing import CliRunner

    from flows.cli import app

    monkeypatch.setenv("LAKEHOUSE_CONFIG", "unset")  # --config exports it: restored after the test
    good, bad = tmp_path / "good.yaml", tmp_path / "bad.yaml"
    good.write_text(YAML.format(url="postgresql+psycopg://reader@db/shop", limit=10))
    bad.write_text(YAML.format(url="postgresql+psycopg://reader:hunter2@db/shop", limit=10))
    ok = CliRunner().invoke(app, ["validate", "--config", str(good)])
    assert ok.exit_code == 0 and "silver.items" in ok.stdout, ok.output
    assert "sql source db, resource items" in " ".join(ok.stdout.split())  # not "files jsonl under (root)/"
    out = CliRunner().invoke(app, ["validate", "--config", str(bad)])
    assert out.exit_code == 2
    assert f"{bad}: pipelines.p.sources.db.url: the URL holds a password" in out.stderr
    assert "hunter2" not in out.stdout + out.stderr
