"""The SQL source against a real PostgreSQL server (the machine's ``initdb`` and ``pg_ctl``, on a
loopback port, for this module only): a login with a password from the environment, a
``timestamptz`` watermark, soft deletes; a wrong password is a refusal; the password appears
in no table, commit, log or error.
"""

from __future__ import annotations

import glob
import logging
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import polars as pl
import pytest
import sqlalchemy as sa

from lakehouse.config import Settings
from lakehouse.declaration import parse
from lakehouse.engine import run_window
from lakehouse.errors import SourceRefused, is_transient
from lakehouse.layers import bronze
from lakehouse.storage import LocalStore
from lakehouse.window import Window, window_ending_at

PASSWORD = "r3ader-pw-5ecret"
START = datetime(2026, 1, 1, tzinfo=UTC)
QUARTER = timedelta(minutes=15)


def _bin(name: str) -> str | None:
    found = shutil.which(name) or sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return found if isinstance(found, str) else (found[-1] if found else None)


pytestmark = pytest.mark.skipif(_bin("initdb") is None, reason="no PostgreSQL server binaries (initdb) on this machine")


@pytest.fixture(scope="module")
def postgres() -> Iterator[tuple[int, sa.Engine]]:
    """A PostgreSQL server of its own (as the ``postgres`` user when run as root: it refuses root),
    in a folder of /tmp (pytest's are private to their owner, where that user cannot reach)."""
    home = Path(tempfile.mkdtemp(prefix="lakehouse-pg-"))
    as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    if as_user:
        shutil.chown(home, "postgres")
    (home / "pw").write_text("admin-pw\n")
    if as_user:
        shutil.chown(home / "pw", "postgres")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    data = home / "data"
    subprocess.run([*as_user, str(_bin("initdb")), "-D", str(data), "-U", "admin", "--auth=scram-sha-256",
                    f"--pwfile={home / 'pw'}", "-E", "UTF8"], check=True, capture_output=True, timeout=120)
    options = f"-p {port} -k {home} -c listen_addresses=127.0.0.1 -c fsync=off"
    subprocess.run([*as_user, str(_bin("pg_ctl")), "-D", str(data), "-o", options, "-l", str(home / "log"), "-w", "start"],
                   check=True, capture_output=True, timeout=120)
    admin = sa.create_engine(f"postgresql+psycopg://admin:admin-pw@127.0.0.1:{port}/postgres", isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f"CREATE ROLE reader LOGIN PASSWORD '{PASSWORD}'"))
            conn.execute(sa.text("CREATE DATABASE shop OWNER reader"))
        shop = sa.create_engine(f"postgresql+psycopg://reader:{PASSWORD}@127.0.0.1:{port}/shop")
        with shop.begin() as conn:
            conn.execute(sa.text(
                "CREATE TABLE customers (customer_id text PRIMARY KEY, name text NOT NULL, balance numeric(12,2), "
                "updated_at timestamptz NOT NULL, deleted boolean NOT NULL DEFAULT false)"))
        yield port, shop
        shop.dispose()
    finally:
        admin.dispose()
        subprocess.run([*as_user, str(_bin("pg_ctl")), "-D", str(data), "-m", "immediate", "stop"], capture_output=True, timeout=60)
        shutil.rmtree(home, ignore_errors=True)


YAML = """
pipelines:
  pg:
    sources:
      db:
        kind: sql
        url: postgresql+psycopg://reader@127.0.0.1:{port}/shop
        password: {{env: SHOP_PG_PASSWORD_FOR_TEST}}
        schema: public
        connect_args: {{connect_timeout: 5}}
        max_batch_records: 7
        deletes:
          customers: {{column: deleted}}
    datasets:
      customers:
        source: db
        columns:
          customer_id: {{type: string, nullable: false}}
          name: string
          balance: decimal(12,2)
          updated_at: {{type: timestamp, nullable: false}}
        key: customer_id
        order_by: updated_at
"""


def window(k: int) -> Window:
    return window_ending_at(START + k * QUARTER, QUARTER)


def test_a_postgres_table_with_soft_deletes_reaches_silver_and_the_password_reaches_nothing(
    postgres: tuple[int, sa.Engine], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    port, shop = postgres
    monkeypatch.setenv("LAKEHOUSE_WAREHOUSE", str(tmp_path / "wh"))
    monkeypatch.delenv("LAKEHOUSE_LANDING", raising=False)
    monkeypatch.setenv("SHOP_PG_PASSWORD_FOR_TEST", PASSWORD)
    caplog.set_level(logging.DEBUG)
    pipeline = parse(YAML.format(port=port)).pipeline("pg")
    tie = window(1).start + timedelta(minutes=3)  # 20 rows on one timestamp, batches of 7
    with shop.begin() as conn:
        conn.execute(sa.text("INSERT INTO customers VALUES (:id, :name, :balance, :at, false)"),
                     [{"id": f"C{i:02d}", "name": f"n{i}", "balance": Decimal(f"{i}.25"), "at": tie} for i in range(20)])
    first = run_window(Settings(), pipeline, window(1))
    assert [b.commits for b in first.landed] == [3]
    with shop.begin() as conn:  # an update, a soft delete (both move the watermark), one row past the window
        later = window(2).start + timedelta(minutes=1)
        conn.execute(sa.text("UPDATE customers SET balance = 99.99, updated_at = :at WHERE customer_id = 'C03'"), {"at": later})
        conn.execute(sa.text("UPDATE customers SET deleted = true, updated_at = :at WHERE customer_id = 'C07'"), {"at": later})
        conn.execute(sa.text("INSERT INTO customers VALUES ('LATE', 'l', 1, :at, false)"), {"at": window(3).start})
    second = run_window(Settings(), pipeline, window(2))
    (merged,) = second.merged
    assert merged.counts is not None and (merged.counts.merged, merged.counts.deleted, merged.removed) == (1, 1, 1)

    settings = Settings()
    silver = pl.read_delta(settings.table_uri("silver", "customers")).sort("customer_id")
    assert silver.height == 19 and "C07" not in silver.get_column("customer_id") and "LATE" not in silver.get_column("customer_id")
    assert silver.filter(pl.col("customer_id") == "C03").get_column("balance").item() == Decimal("99.99")
    assert silver.get_column("updated_at").min() == tie
    raw = pl.read_delta(settings.table_uri("bronze", "customers_raw"))
    assert set(raw.get_column("_source")) == {f"sql:postgresql://127.0.0.1:{port}/shop/customers"}

    # the password is in no table, no commit (log files), no log line
    for path in (tmp_path / "wh").rglob("*"):
        if path.is_file():
            assert PASSWORD.encode() not in path.read_bytes(), path
    assert PASSWORD not in caplog.text


def test_a_wrong_password_is_a_refusal_that_advances_nothing_and_does_not_show_it(
    postgres: tuple[int, sa.Engine], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    port, _ = postgres
    monkeypatch.setenv("LAKEHOUSE_WAREHOUSE", str(tmp_path / "wh"))
    monkeypatch.setenv("SHOP_PG_PASSWORD_FOR_TEST", "not-the-pw-4242")
    ds = parse(YAML.format(port=port)).pipeline("pg").dataset("customers")
    with pytest.raises(SourceRefused, match="password authentication failed for user") as refused:
        bronze.ingest(Settings(), ds, window(1), landing=LocalStore(tmp_path / "landing"))
    assert not is_transient(refused.value)
    assert "not-the-pw-4242" not in str(refused.value) and refused.value.__cause__ is None
    assert pl.read_delta(Settings().table_uri("bronze", "customers_raw")).height == 0  # nothing advanced
