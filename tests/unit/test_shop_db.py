"""The shop's database (lakehouse/dev/shop_db.py) is seeded and deterministic, and each window
changes what its docstring says: updates, a touched row, a delete and a new row of each table."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa

from lakehouse.dev import shop_db

START = datetime(2026, 1, 1, tzinfo=UTC)
QUARTER = timedelta(minutes=15)


def contents(path: Path, *, seed: int, windows: int = 3) -> tuple[object, ...]:
    engine = shop_db.create(path, seed=seed)
    steps = [shop_db.step(engine, START + k * QUARTER, START + (k + 1) * QUARTER, seed=seed) for k in range(windows)]
    with engine.connect() as conn:
        tables = tuple(tuple(conn.execute(sa.select(t).order_by(*t.columns)).all())
                       for t in (shop_db.customers, shop_db.products, shop_db.products_deleted))
    engine.dispose()
    return steps, tables


def test_the_same_seed_gives_the_same_database_and_another_seed_another(tmp_path: Path) -> None:
    once, again = contents(tmp_path / "a.db", seed=7), contents(tmp_path / "b.db", seed=7)
    assert once == again
    assert contents(tmp_path / "c.db", seed=8) != once


def test_each_window_updates_touches_deletes_and_adds_inside_the_window(tmp_path: Path) -> None:
    engine = shop_db.create(tmp_path / "shop.db")
    end = START + QUARTER
    step = shop_db.step(engine, START, end)
    customers, products = step["customers"], step["products"]
    assert (len(customers.updated), len(customers.touched), len(customers.deleted), len(customers.inserted)) == (3, 1, 1, 1)
    assert (len(products.updated), len(products.touched), len(products.deleted), len(products.inserted)) == (2, 1, 1, 1)
    with engine.connect() as conn:
        soft = conn.execute(sa.select(shop_db.customers).where(shop_db.customers.c.customer_id == customers.deleted[0])).one()
        assert soft.is_deleted and START.replace(tzinfo=None) <= soft.updated_at < end.replace(tzinfo=None)
        gone = conn.execute(sa.select(shop_db.products_deleted.c.product_id)).scalars().all()
        assert gone == list(products.deleted)
        assert conn.execute(sa.select(sa.func.count()).where(shop_db.products.c.product_id == gone[0])).scalar() == 0
        updated = conn.execute(sa.select(shop_db.customers.c.updated_at).where(
            shop_db.customers.c.customer_id.in_(customers.updated[:2]))).scalars().all()
        assert len(set(updated)) == 1  # two updates share one timestamp: the key breaks the tie
    assert len(shop_db.live_customers(engine)) == 12 and len(shop_db.live_products(engine)) == 10


def test_each_product_of_the_catalogue_has_a_reorder_level_and_one_changes_a_window(tmp_path: Path) -> None:
    from lakehouse.dev.simulator import PRODUCTS

    engine = shop_db.create(tmp_path / "shop.db")
    before = {p["product_id"]: p["reorder_level"] for p in shop_db.policies(engine)}
    assert sorted(before) == [p[0] for p in PRODUCTS] and all(5 <= v <= 15 for v in before.values())
    end = START + QUARTER
    (changed,) = shop_db.step(engine, START, end)["stock_policies"].updated
    after = {p["product_id"]: p for p in shop_db.policies(engine)}
    assert {k for k, p in after.items() if p["updated_at"] >= START.replace(tzinfo=None)} == {changed}
    assert START.replace(tzinfo=None) <= after[changed]["updated_at"] < end.replace(tzinfo=None)


def test_a_database_made_before_stock_policies_gains_the_table_when_opened(tmp_path: Path) -> None:
    path = tmp_path / "shop.db"
    shop_db.create(path).dispose()
    old = sa.create_engine(shop_db.url(path))
    with old.begin() as conn:
        conn.execute(sa.text("DROP TABLE stock_policies"))  # as `lakehouse serve` kept it before the table existed
    old.dispose()
    engine = shop_db.open_or_create(path)
    assert len(shop_db.policies(engine)) == 50
    assert len(shop_db.policies(shop_db.open_or_create(path))) == 50  # seeded once
