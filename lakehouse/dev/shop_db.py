"""The shop's database, locally: customers, products and stock policies in a SQLite file that changes each window.

The local sibling of a ``kind: sql`` source (:mod:`lakehouse.sources.sql`). :func:`create`
makes the file with a seeded starting catalogue; :func:`step` then changes it as one window
of the shop would, deterministically (a ``random.Random`` seeded with a SHA-256 of the seed
and the window's start, and choices made over rows in key order), so the same seed and
windows give the same database::

    customers          customer_id (key), name, email, segment, updated_at, is_deleted
                       soft deletes: a deleted customer stays, is_deleted = 1
    products           product_id (key), name, category, unit_price NUMERIC(12,2), updated_at
                       hard deletes: the row is removed ...
    products_deleted   product_id, deleted_at      ... and its key written here (a tombstone)
    stock_policies     product_id (key), reorder_level, updated_at
                       the stock below which a product is low, one per product of the
                       simulator's catalogue (the ids its inventory events carry)

Each window: a few customers and products are updated (every write sets ``updated_at``
inside the window), some of them several to one same timestamp (ties the key breaks); one
row of each is touched (a new ``updated_at``, the same values: a duplicate payload); a
customer is soft-deleted, a product is deleted; a new customer and a new product arrive;
one product's reorder level changes.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import sqlalchemy as sa

from lakehouse.dev.simulator import CUSTOMERS
from lakehouse.dev.simulator import PRODUCTS as CATALOGUE

CATEGORIES = ("books", "toys", "garden", "kitchen", "games")
SEGMENTS = ("new", "regular", "vip")
START = datetime(2025, 12, 1, tzinfo=UTC)
"""``updated_at`` of the starting rows."""

metadata = sa.MetaData()
customers = sa.Table(
    "customers", metadata,
    sa.Column("customer_id", sa.String, primary_key=True),
    sa.Column("name", sa.String, nullable=False),
    sa.Column("email", sa.String),
    sa.Column("segment", sa.String),
    sa.Column("updated_at", sa.DateTime, nullable=False, index=True),
    sa.Column("is_deleted", sa.Boolean, nullable=False, default=False),
)
products = sa.Table(
    "products", metadata,
    sa.Column("product_id", sa.String, primary_key=True),
    sa.Column("name", sa.String, nullable=False),
    sa.Column("category", sa.String),
    sa.Column("unit_price", sa.Numeric(12, 2)),
    sa.Column("updated_at", sa.DateTime, nullable=False, index=True),
)
products_deleted = sa.Table(
    "products_deleted", metadata,
    sa.Column("product_id", sa.String, nullable=False),
    sa.Column("deleted_at", sa.DateTime, nullable=False, index=True),
)
stock_policies = sa.Table(
    "stock_policies", metadata,
    sa.Column("product_id", sa.String, primary_key=True),
    sa.Column("reorder_level", sa.Integer, nullable=False),
    sa.Column("updated_at", sa.DateTime, nullable=False, index=True),
)


@dataclass(frozen=True)
class Step:
    """What one window changed, by key."""

    updated: tuple[str, ...]
    touched: tuple[str, ...]
    deleted: tuple[str, ...]
    inserted: tuple[str, ...]


def url(path: Path) -> str:
    """The SQLAlchemy URL of the database file at ``path`` (what a ``kind: sql`` source declares)."""
    return f"sqlite:///{path}"


def _rng(seed: int, at: datetime) -> random.Random:
    digest = hashlib.sha256(f"{seed}:{at.isoformat()}".encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def _naive(t: datetime) -> datetime:
    """A UTC time as the SQLite columns hold it (no zone)."""
    return t.astimezone(UTC).replace(tzinfo=None)


def _price(rng: random.Random) -> Decimal:
    return Decimal(rng.randrange(199, 9999)) / 100


def reorder_level(i: int) -> int:
    """The starting reorder level of the catalogue's ``i``-th product (5 to 15 units)."""
    return 5 + i * 7 % 11


def _seed_policies(conn: sa.Connection, at: datetime) -> None:
    conn.execute(stock_policies.insert(), [
        {"product_id": product, "reorder_level": reorder_level(i), "updated_at": at}
        for i, (product, _, _) in enumerate(CATALOGUE)
    ])


def create(path: Path, *, seed: int = 7, customers_n: int = CUSTOMERS, products_n: int = 10) -> sa.Engine:
    """Make the database at ``path`` with ``customers_n`` customers and ``products_n`` products."""
    engine = sa.create_engine(url(path))
    metadata.create_all(engine)
    rng = _rng(seed, START)
    at = _naive(START)
    with engine.begin() as conn:
        conn.execute(customers.insert(), [
            {"customer_id": f"C-{i:04d}", "name": f"Customer {i}", "email": f"c{i}@example.com",
             "segment": rng.choice(SEGMENTS), "updated_at": at, "is_deleted": False}
            for i in range(customers_n)
        ])
        conn.execute(products.insert(), [
            {"product_id": f"P-{i:04d}", "name": f"Product {i}", "category": CATEGORIES[i % len(CATEGORIES)],
             "unit_price": _price(rng), "updated_at": at}
            for i in range(products_n)
        ])
        _seed_policies(conn, at)
    return engine


def step(engine: sa.Engine, start: datetime, end: datetime, *, seed: int = 7) -> dict[str, Step]:
    """Change the database as the window ``[start, end)`` would; what changed per table."""
    rng = _rng(seed, start)
    seconds = max(2, int((end - start).total_seconds()))

    def when() -> datetime:
        return _naive(start + timedelta(seconds=rng.randrange(1, seconds)))

    with engine.begin() as conn:
        live = list(conn.execute(sa.select(customers.c.customer_id).where(customers.c.is_deleted.is_(False))
                                 .order_by(customers.c.customer_id)).scalars())
        updated = sorted(rng.sample(live, min(3, len(live))))
        tie = when()  # the first two share one timestamp: the key breaks the tie
        for i, key in enumerate(updated):
            conn.execute(customers.update().where(customers.c.customer_id == key)
                         .values(segment=rng.choice(SEGMENTS), email=f"{key.lower()}+{rng.randrange(1000)}@example.com",
                                 updated_at=tie if i < 2 else when()))
        rest = [k for k in live if k not in updated]
        touched = rest[:1]
        for key in touched:
            conn.execute(customers.update().where(customers.c.customer_id == key).values(updated_at=when()))
        deleted = [rng.choice(rest[1:])] if len(rest) > 1 else []
        for key in deleted:
            conn.execute(customers.update().where(customers.c.customer_id == key).values(is_deleted=True, updated_at=when()))
        new_customer = f"C-{start:%Y%m%d%H%M}"
        conn.execute(customers.insert().values(customer_id=new_customer, name=f"Customer {new_customer}",
                                               email=None, segment="new", updated_at=when(), is_deleted=False))
        changed = {"customers": Step(tuple(updated), tuple(touched), tuple(deleted), (new_customer,))}

        keys = list(conn.execute(sa.select(products.c.product_id).order_by(products.c.product_id)).scalars())
        repriced = sorted(rng.sample(keys, min(2, len(keys))))
        for key in repriced:
            conn.execute(products.update().where(products.c.product_id == key).values(unit_price=_price(rng), updated_at=tie))
        rest = [k for k in keys if k not in repriced]
        touched = rest[-1:]
        for key in touched:
            conn.execute(products.update().where(products.c.product_id == key).values(updated_at=when()))
        gone = [rng.choice(rest[:-1])] if len(rest) > 1 else []
        for key in gone:
            conn.execute(products.delete().where(products.c.product_id == key))
            conn.execute(products_deleted.insert().values(product_id=key, deleted_at=when()))
        new_product = f"P-{start:%Y%m%d%H%M}"
        conn.execute(products.insert().values(product_id=new_product, name=f"Product {new_product}",
                                              category=rng.choice(CATEGORIES), unit_price=_price(rng), updated_at=when()))
        changed["products"] = Step(tuple(repriced), tuple(touched), tuple(gone), (new_product,))

        # drawn last, so that the customers' and products' draws stay what they were
        levels = list(conn.execute(sa.select(stock_policies.c.product_id).order_by(stock_policies.c.product_id)).scalars())
        relevelled = [rng.choice(levels)] if levels else []
        for key in relevelled:
            conn.execute(stock_policies.update().where(stock_policies.c.product_id == key)
                         .values(reorder_level=rng.randint(5, 25), updated_at=when()))
        changed["stock_policies"] = Step(tuple(relevelled), (), (), ())
    return changed


def open_or_create(path: Path, *, seed: int = 7) -> sa.Engine:
    """The database at ``path``: made by :func:`create` if the file is not there yet (``lakehouse serve`` keeps it)."""
    if path.is_file():
        engine = sa.create_engine(url(path))
        metadata.create_all(engine)  # a file made before a table was added (stock_policies) gains it
        with engine.begin() as conn:
            if conn.execute(sa.select(sa.func.count()).select_from(stock_policies)).scalar() == 0:
                _seed_policies(conn, _naive(START))
        return engine
    path.parent.mkdir(parents=True, exist_ok=True)
    return create(path, seed=seed)


def step_once(engine: sa.Engine, start: datetime, end: datetime, *, seed: int = 7) -> dict[str, Step] | None:
    """:func:`step`, unless the window ``[start, end)`` changed the database already (its new customer is
    there: a restarted ``lakehouse serve`` steps its windows again); None then."""
    with engine.connect() as conn:
        done = conn.execute(sa.select(customers.c.customer_id)
                            .where(customers.c.customer_id == f"C-{start:%Y%m%d%H%M}")).first()
    return None if done is not None else step(engine, start, end, seed=seed)


def live_customers(engine: sa.Engine) -> list[dict[str, object]]:
    """The customers that are not deleted, by key (what silver must hold)."""
    with engine.connect() as conn:
        rows = conn.execute(sa.select(customers).where(customers.c.is_deleted.is_(False)).order_by(customers.c.customer_id))
        return [dict(r) for r in rows.mappings()]


def policies(engine: sa.Engine) -> list[dict[str, object]]:
    """The stock policies, by key (what silver's current versions must hold)."""
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(sa.select(stock_policies).order_by(stock_policies.c.product_id)).mappings()]


def live_products(engine: sa.Engine) -> list[dict[str, object]]:
    """The products, by key (what silver must hold)."""
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(sa.select(products).order_by(products.c.product_id)).mappings()]
