"""The bad-input corpus: each kind of bad input gets a named outcome, and no row is lost.

Every case lands one file next to a few good records, then runs bronze → gate → silver
against moto S3 with real Soda scans. The expected outcome is one of: ``quarantine``
(every bad row in the quarantine table with the named reason, the rest promoted),
``block`` (the gate names the failing check, nothing downstream changes), ``promote``
(the input is valid after all: the assertion says what it became), or ``empty``
(nothing to ingest, nothing committed). For every case, conservation holds:
bronze rows = read = merged + rejected + duplicates.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import polars as pl
import pytest

from lakehouse import bronze, silver
from lakehouse.config import Settings
from lakehouse.shop import SHOP
from lakehouse.storage import open_store
from lakehouse.window import window_ending_at

WINDOW = window_ending_at(datetime(2026, 1, 1, 0, 15, tzinfo=UTC), timedelta(minutes=15))


def order(i: int, **override: object) -> dict:
    rec = {"order_id": f"O{i}", "customer_id": "C1", "status": "paid",
           "ordered_at": "2026-01-01T00:01:00Z", "updated_at": "2026-01-01T00:02:00Z"}
    rec.update(override)
    return {k: v for k, v in rec.items() if v is not ...}


def item(i: int, **override: object) -> dict:
    rec = {"order_id": f"O{i}", "line_no": 1, "product_id": "P1", "category": "toys",
           "quantity": 2, "unit_price": "9.99", "updated_at": "2026-01-01T00:02:00Z"}
    rec.update(override)
    return {k: v for k, v in rec.items() if v is not ...}


def lines(*records: object) -> bytes:
    return ("\n".join(r if isinstance(r, str) else json.dumps(r) for r in records) + "\n").encode()


GOOD_ORDERS = [order(i) for i in range(100, 130)]
CATALOGUE = [{"product_id": "P1", "name": "Toy", "category": "toys", "unit_price": "9.99", "updated_at": "2025-12-01T00:00:00Z"}]
GOOD_ITEMS = [item(i) for i in range(100, 130)]
ALL_MISSING = [order(i, order_id=...) for i in range(30)]

# (case, dataset, file bytes, outcome, detail)
CASES = [
    ("truncated JSON line", "orders", lines(*GOOD_ORDERS, '{"order_id": "O1", "status": '), "quarantine", "malformed"),
    ("text that is not JSON", "orders", lines(*GOOD_ORDERS, "hello world"), "quarantine", "malformed"),
    ("JSON array instead of object", "orders", lines(*GOOD_ORDERS, "[1, 2, 3]"), "quarantine", "malformed"),
    ("bare JSON string", "orders", lines(*GOOD_ORDERS, '"O1"'), "quarantine", "malformed"),
    ("NaN literal", "order_items", lines(*GOOD_ITEMS, '{"order_id": "O1", "line_no": 1, "quantity": NaN}'), "quarantine", "malformed"),
    ("truncated file", "orders", lines(*GOOD_ORDERS)[:-40], "quarantine", "malformed"),
    ("empty file", "orders", b"", "empty", None),
    ("only blank lines", "orders", b"\n\n   \n", "empty", None),
    ("BOM at the start", "orders", b"\xef\xbb\xbf" + lines(*GOOD_ORDERS), "promote", None),
    ("latin-1 bytes", "orders", lines(*GOOD_ORDERS) + '{"order_id": "O1", "customer_id": "Ren\xe9", "status": "paid", "ordered_at": "2026-01-01T00:01:00Z", "updated_at": "2026-01-01T00:02:00Z"}\n'.encode("latin-1"), "quarantine", "encoding: not valid UTF-8"),
    ("null key", "orders", lines(*GOOD_ORDERS, order(1, order_id=None)), "quarantine", "missing order_id"),
    ("absent key", "orders", lines(*GOOD_ORDERS, order(1, order_id=...)), "quarantine", "missing order_id"),
    ("empty object", "orders", lines(*GOOD_ORDERS, "{}"), "quarantine", "missing order_id"),
    ("all nulls", "orders", lines(*GOOD_ORDERS, order(1, order_id=None, customer_id=None, status=None, ordered_at=None, updated_at=None)), "quarantine", "missing order_id"),
    ("null composite key part", "order_items", lines(*GOOD_ITEMS, item(1, line_no=None)), "quarantine", "missing line_no"),
    ("duplicate keys in one batch", "orders", lines(*GOOD_ORDERS, order(100, status="shipped", updated_at="2026-01-01T00:03:00Z")), "promote", "duplicates=1"),
    ("exact duplicate lines", "orders", lines(*GOOD_ORDERS, GOOD_ORDERS[0], GOOD_ORDERS[0]), "promote", "duplicates=2"),
    ("string where a timestamp belongs", "orders", lines(*GOOD_ORDERS, order(1, updated_at="yesterday")), "quarantine", "wrong type: updated_at"),
    ("number where a timestamp belongs", "orders", lines(*GOOD_ORDERS, order(1, updated_at=1767225600)), "quarantine", "wrong type: updated_at"),
    ("timestamp without zone", "orders", lines(*GOOD_ORDERS, order(1, ordered_at="2026-01-01T00:01:00")), "quarantine", "wrong type: ordered_at"),
    ("timestamp in another zone", "orders", lines(*GOOD_ORDERS, order(1, ordered_at="2026-01-01T02:01:00+02:00")), "promote", "ordered_at=2026-01-01T00:01:00+00:00"),
    ("date without time", "orders", lines(*GOOD_ORDERS, order(1, ordered_at="2026-01-01")), "quarantine", "wrong type: ordered_at"),
    ("impossible date", "orders", lines(*GOOD_ORDERS, order(1, ordered_at="2026-02-30T00:00:00Z")), "quarantine", "wrong type: ordered_at"),
    ("unknown enum value", "orders", lines(*GOOD_ORDERS, order(1, status="lost")), "quarantine", "invalid status: 'lost'"),
    ("enum value with spaces", "orders", lines(*GOOD_ORDERS, order(1, status=" paid ")), "quarantine", "invalid status"),
    ("enum value in other case", "orders", lines(*GOOD_ORDERS, order(1, status="PAID")), "quarantine", "invalid status"),
    ("boolean where a string belongs", "orders", lines(*GOOD_ORDERS, order(1, status=True)), "quarantine", "invalid status: 'true'"),
    ("number as string", "order_items", lines(*GOOD_ITEMS, item(1, quantity="3")), "promote", "quantity=3"),
    ("word where a number belongs", "order_items", lines(*GOOD_ITEMS, item(1, quantity="three")), "quarantine", "wrong type: quantity"),
    ("fraction where an integer belongs", "order_items", lines(*GOOD_ITEMS, item(1, quantity=2.5)), "quarantine", "wrong type: quantity"),
    ("negative quantity", "order_items", lines(*GOOD_ITEMS, item(1, quantity=-1)), "quarantine", "quantity -1 out of range"),
    ("absurd quantity", "order_items", lines(*GOOD_ITEMS, item(1, quantity=10**9)), "quarantine", "out of range"),
    ("negative price", "order_items", lines(*GOOD_ITEMS, item(1, unit_price="-5.00")), "quarantine", "unit_price -5.00 out of range"),
    ("absurd price", "order_items", lines(*GOOD_ITEMS, item(1, unit_price="99999999.99")), "quarantine", "out of range"),
    ("price with too many decimals", "order_items", lines(*GOOD_ITEMS, item(1, unit_price="19.999")), "quarantine", "at most 2 places"),
    ("price in exponent notation", "order_items", lines(*GOOD_ITEMS, item(1, unit_price="1e3")), "quarantine", "at most 2 places"),
    ("price as a JSON number", "order_items", lines(*GOOD_ITEMS, item(1, unit_price=19.5)), "promote", "unit_price=19.50"),
    ("integer overflow", "order_items", lines(*GOOD_ITEMS, item(1, quantity=10**30)), "quarantine", "wrong type: quantity"),
    ("unicode edge cases", "orders", lines(*GOOD_ORDERS, order(1, customer_id="C-😀\u200b\u202eé")), "promote", "customer_id=C-😀\u200b\u202eé"),
    ("very long string", "orders", lines(*GOOD_ORDERS, order(1, customer_id="x" * 100_000)), "promote", "customer_id_length=100000"),
    ("deeply nested extra field", "orders", lines(*GOOD_ORDERS, {**order(1), "meta": json.loads("[" * 200 + "]" * 200)}), "quarantine", "malformed: not a parseable JSON object"),
    ("moderately nested extra field", "orders", lines(*GOOD_ORDERS, {**order(1), "meta": json.loads("[" * 20 + "]" * 20)}), "promote", None),
    ("extra columns", "orders", lines(*GOOD_ORDERS, {**order(1), "coupon": "X", "note": None}), "promote", None),
    ("missing optional column", "orders", lines(*GOOD_ORDERS, order(1, customer_id=...)), "promote", "customer_id=None"),
    ("CRLF line endings", "orders", lines(*GOOD_ORDERS).replace(b"\n", b"\r\n"), "promote", None),
    ("no newline at the end", "orders", lines(*GOOD_ORDERS).rstrip(b"\n"), "promote", None),
    ("renamed key column", "orders", lines(*[{**{k: v for k, v in o.items() if k != "order_id"}, "orderId": o["order_id"]} for o in GOOD_ORDERS]), "block", "missing(order_id)"),
    ("column type change for the whole batch", "orders", lines(*[{**o, "ordered_at": 1767225600} for o in GOOD_ORDERS]), "block", "missing(ordered_at)"),
    ("most keys missing", "orders", lines(*GOOD_ORDERS[:5], *ALL_MISSING), "block", "missing(order_id)"),
    ("most statuses unknown", "orders", lines(*[{**o, "status": "??"} for o in GOOD_ORDERS]), "block", "valid_values(status)"),
    ("unknown product", "order_items", lines(*GOOD_ITEMS, item(1, product_id="P404")), "quarantine", "unknown product_id: 'P404' is not in silver.products"),
    ("product id in other case", "order_items", lines(*GOOD_ITEMS, item(1, product_id="p1")), "quarantine", "unknown product_id: 'p1'"),
    ("most products unknown", "order_items", lines(*[{**i, "product_id": "P404"} for i in GOOD_ITEMS]), "block", "reference(product_id)"),
    ("stale batch (freshness warns)", "orders", lines(*[{**o, "updated_at": "2025-12-31T20:00:00Z", "ordered_at": "2025-12-31T19:00:00Z"} for o in GOOD_ORDERS]), "promote", "warning=freshness(updated_at)"),
]


@pytest.mark.parametrize(("case", "dataset", "data", "outcome", "detail"), CASES, ids=[c[0] for c in CASES])
def test_bad_input(warehouse: str, case: str, dataset: str, data: bytes, outcome: str, detail: str | None) -> None:
    settings = Settings()
    ds = SHOP.dataset(dataset)
    landing = open_store(settings.landing_root, settings)
    if ds.upstream:  # order lines refer to products: the catalogue lands in the same window
        products = SHOP.dataset("products")
        landing.put(f"{products.prefix}/2026/01/01/00/01/part-0.jsonl", lines(*CATALOGUE))
        bronze.ingest(settings, products, WINDOW, landing=landing)
        upstream = {"products": silver.prepare(settings, products, now=WINDOW.end)}
    else:
        upstream = {}
    landing.put(f"{ds.prefix}/2026/01/01/00/01/part-0.jsonl", data)

    landed = bronze.ingest(settings, ds, WINDOW, landing=landing)
    if outcome == "empty":
        # recorded once in the cursor (a commit of no rows), so it is not listed again
        assert not landed.skipped and landed.rows == 0 and len(landed.files) == 1
        assert bronze.ingest(settings, ds, WINDOW, landing=landing).skipped
        assert silver.prepare(settings, ds, upstream, now=WINDOW.end) is None
        return
    batch = silver.prepare(settings, ds, upstream, now=WINDOW.end)
    assert batch is not None
    c = batch.counts
    assert landed.rows == c.read + c.superseded
    assert c.read == c.merged + c.rejected + c.duplicates + c.conflicts

    if outcome == "block":
        assert not batch.gate.passed
        assert detail in batch.gate.failed_checks(), batch.gate.summary()
        return
    assert batch.gate.passed, batch.gate.summary()
    result = silver.commit(settings, batch)
    quarantined = pl.read_delta(settings.table_uri("quarantine", ds.spec.name), storage_options=_options(settings)) if c.rejected else None
    promoted = pl.read_delta(settings.table_uri("silver", ds.spec.name), storage_options=_options(settings))
    assert promoted.height == c.merged == result.inserted

    if outcome == "quarantine":
        assert quarantined is not None and quarantined.height == c.rejected >= 1
        reasons = quarantined.get_column("_reject_reason").to_list()
        assert any(detail in r for r in reasons), reasons
        assert quarantined.get_column("_raw").null_count() == 0 and quarantined.get_column("_rule").null_count() == 0
        assert quarantined.get_column("_batch_id").null_count() == 0
        assert quarantined.get_column("_source_position").to_list()[0].startswith(ds.prefix)
        return
    assert outcome == "promote" and c.rejected == 0, (quarantined.to_dicts() if quarantined is not None else None)
    assert batch.gate.warnings() == ([detail.split("=")[1]] if detail and detail.startswith("warning=") else [])
    if detail and detail.startswith("warning="):
        pass
    elif detail and detail.startswith("duplicates="):
        assert c.duplicates == int(detail.split("=")[1])
    elif detail:
        name, _, expected = detail.partition("=")
        extra = promoted.filter(pl.col("order_id") == "O1")
        if name.endswith("_length"):
            assert extra.get_column(name.removesuffix("_length")).str.len_chars().to_list() == [int(expected)]
        else:
            value = extra.get_column(name).to_list()[0]
            shown = value.isoformat() if isinstance(value, datetime) else ("None" if value is None else str(value))
            assert shown == expected


def _options(settings: Settings) -> dict[str, str]:
    from lakehouse.storage import storage_options

    return storage_options(settings)
