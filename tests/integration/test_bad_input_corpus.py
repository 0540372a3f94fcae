"""The bad-input corpus: each kind of bad input gets a named outcome, and no row is lost.

Every case lands one file next to a few good records, then runs bronze → gate → silver
with real Soda scans, on a local warehouse: what is under test is how each input is read
and typed, which does not depend on the store (the same code reads S3 in the pipeline
tests), and a local folder makes the 57 cases 21 s instead of 75 s. The expected outcome is one of: ``quarantine``
(every bad row in the quarantine table with the named reason, the rest promoted),
``block`` (the gate names the failing check, nothing downstream changes), ``promote``
(the input is valid after all: the assertion says what it became), or ``empty``
(nothing to ingest, nothing committed). For every case, conservation holds:
bronze rows = read = merged + rejected + duplicates + conflicts.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import polars as pl
import pytest

from lakehouse import declaration
from lakehouse.config import Settings
from lakehouse.layers import bronze, silver
from lakehouse.storage import open_store
from lakehouse.window import window_ending_at
from tests.shop_files import SHOP

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
    ("boolean where a string belongs", "orders", lines(*GOOD_ORDERS, order(1, status=True)), "quarantine", "wrong type: status 'true' is a JSON boolean, not string"),
    ("number as string", "order_items", lines(*GOOD_ITEMS, item(1, quantity="3")), "quarantine", "wrong type: quantity '3' is a JSON string, not int64"),
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
def test_bad_input(local_warehouse: str, case: str, dataset: str, data: bytes, outcome: str, detail: str | None) -> None:
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


# ---------------------------------------------------------------- declared constraints, record by record (issue 11)

PAYMENTS_YAML = """
pipelines:
  pay:
    sources:
      jsonl_files: {prefix: "", format: jsonl}
      csv_files: {prefix: "", format: csv}
    datasets:
      payments: &payments
        source: jsonl_files
        columns:
          payment_id: {type: int64, nullable: false}
          note: string
          amount: {type: "decimal(12,2)", nullable: false}
          captured: bool
          paid_on: date
          paid_at: timestamp
          updated_at: {type: timestamp, nullable: false}
        key: payment_id
        order_by: updated_at
        checks: [{duplicate: payment_id}, {row_count: 1}]
      payments_csv:
        <<: *payments
        source: csv_files
      payments_strict:
        <<: *payments
        unknown_fields: fail
        strings_as_numbers: true
"""
PAY = declaration.parse(PAYMENTS_YAML, path="payments.yaml").pipeline("pay")


def payment(i: int, **override: object) -> dict:
    rec = {"payment_id": i, "note": "n", "amount": "9.99", "captured": True, "paid_on": "2026-01-01",
           "paid_at": "2026-01-01T00:01:00Z", "updated_at": "2026-01-01T00:02:00Z"}
    rec.update(override)
    return {k: v for k, v in rec.items() if v is not ...}


def csv_text(*rows: str) -> bytes:
    return ("payment_id,note,amount,captured,paid_on,paid_at,updated_at\n" + "\n".join(rows) + "\n").encode()


CSV_GOOD = "{},n,9.99,true,2026-01-01,2026-01-01T00:01:00Z,2026-01-01T00:02:00Z"

# (case, dataset, {file name: bytes}, {(file name, line): reason fragment, or None: promoted}, unknown field counts)
LINE_CASES = [
    ("JSON records: declared types and nullability", "payments", {"part-0.jsonl": lines(
        payment(1),
        payment(2, amount=None),                                   # nullable: false
        payment(3, amount=...),
        payment(4, payment_id="4"),                                # a string is not a number …
        payment(5, captured="true"),                               # … nor a bool
        payment(6, note={"text": "n"}),                            # an object is not a string
        payment(7, paid_on="2026-1-1"),
        payment(8, paid_at="2026-01-01T23:59:60Z"),
        payment(9, paid_at="2026-01-01T00:00:00.123456789Z"),
        payment(10, coupon="X"),                                   # unknown: reported, promoted (warn)
        payment(11, amount=..., AMOUNT="9.99"),                    # renamed by case: reported, and amount is missing
        {**payment(12), " amount": "9.99"},                        # padded: reported
        payment(13, paid_at="2026-01-01T00:00:00.123456000Z"),     # no precision lost: promoted
    )}, {
        ("part-0.jsonl", 1): None,
        ("part-0.jsonl", 2): "missing amount: declared nullable: false",
        ("part-0.jsonl", 3): "missing amount: declared nullable: false",
        ("part-0.jsonl", 4): "wrong type: payment_id '4' is a JSON string, not int64",
        ("part-0.jsonl", 5): "wrong type: captured 'true' is a JSON string, not bool",
        ("part-0.jsonl", 6): "is a JSON object, not string",
        ("part-0.jsonl", 7): "wrong type: paid_on '2026-1-1' is not a date (YYYY-MM-DD)",
        ("part-0.jsonl", 8): "has second 60",
        ("part-0.jsonl", 9): "is more precise than microseconds",
        ("part-0.jsonl", 10): None,
        ("part-0.jsonl", 11): "missing amount: declared nullable: false",
        ("part-0.jsonl", 12): None,
        ("part-0.jsonl", 13): None,
    }, {"coupon": 1, "AMOUNT (looks like amount)": 1, " amount (looks like amount)": 1}),
    ("CSV records: one bad row, a duplicated header, strict text", "payments_csv", {
        "part-0.csv": csv_text(
            CSV_GOOD.format(1),
            "2,n,9.99,true,2026-01-01,2026-01-01T00:01:00Z",       # a field short
            CSV_GOOD.format(3),
            '4,n"x,9.99,true,2026-01-01,2026-01-01T00:01:00Z,2026-01-01T00:02:00Z',  # bad quoting
            "5,n,9.99,yes,2026-01-01,2026-01-01T00:01:00Z,2026-01-01T00:02:00Z",  # not true/false
            "6.0,n,9.99,true,2026-01-01,2026-01-01T00:01:00Z,2026-01-01T00:02:00Z",  # not int64 text
            '7,"12, with a comma",9.99,false,2026-01-01,2026-01-01T00:01:00Z,2026-01-01T00:02:00Z',
        ),
        "part-1.csv": b"payment_id,note,note,amount,captured,paid_on,paid_at,updated_at\n8,a,b,9.99,true,2026-01-01,2026-01-01T00:01:00Z,2026-01-01T00:02:00Z\n",
    }, {
        ("part-0.csv", 2): None,
        ("part-0.csv", 3): "malformed CSV row: 6 fields where the header has 7",
        ("part-0.csv", 4): None,
        ("part-0.csv", 5): "malformed CSV row: bad quoting",
        ("part-0.csv", 6): "wrong type: captured 'yes' is not bool text",
        ("part-0.csv", 7): "wrong type: payment_id '6.0' is not int64 text",
        ("part-0.csv", 8): None,
        ("part-1.csv", 2): "malformed CSV file: the header names note more than once",
    }, {}),
    ("unknown_fields: fail and strings_as_numbers", "payments_strict", {"part-0.jsonl": lines(
        payment(1, payment_id="1"),                                # declared: numbers may come as strings
        payment(2, coupon="X"),
        payment(3, Amount="1.00"),
    )}, {
        ("part-0.jsonl", 1): None,
        ("part-0.jsonl", 2): "unknown field coupon: unknown_fields: fail",
        ("part-0.jsonl", 3): "unknown field Amount (looks like amount)",
    }, {"coupon": 1, "Amount (looks like amount)": 1}),
]


@pytest.mark.parametrize(("case", "dataset", "files", "expected", "unknown"), LINE_CASES, ids=[c[0] for c in LINE_CASES])
def test_bad_records_line_by_line(
    local_warehouse: str, case: str, dataset: str, files: dict[str, bytes], expected: dict, unknown: dict[str, int]
) -> None:
    settings = Settings()
    ds = PAY.dataset(dataset)
    landing = open_store(settings.landing_root, settings)
    for name, data in files.items():
        landing.put(f"{ds.prefix}/2026/01/01/00/01/{name}", data)
    landed = bronze.ingest(settings, ds, WINDOW, landing=landing)
    batch = silver.prepare(settings, ds, {}, now=WINDOW.end)
    assert batch is not None and batch.gate.passed, batch and batch.gate.summary()
    c = batch.counts
    assert landed.rows == c.read == c.merged + c.rejected + c.duplicates == len(expected)
    result = silver.commit(settings, batch)
    assert dict(result.unknown_fields or {}) == unknown
    options = _options(settings)
    promoted = pl.read_delta(settings.table_uri("silver", ds.spec.name), storage_options=options)
    quarantined = pl.read_delta(settings.table_uri("quarantine", ds.spec.name), storage_options=options)
    seen = {(p.rsplit("/", 1)[1], line): reason for p, line, reason in quarantined.select("_source_position", "_line", "_reject_reason").iter_rows()}
    kept = {(p.rsplit("/", 1)[1], line) for p, line in promoted.select("_source_position", "_line").iter_rows()}
    for where, fragment in expected.items():
        if fragment is None:
            assert where in kept and where not in seen, (where, seen.get(where))
        else:
            assert where in seen and fragment in seen[where], (where, seen.get(where), fragment)
    assert promoted.height == sum(f is None for f in expected.values())
    if dataset == "payments_csv":  # a bad CSV row is quarantined as its own line, as received
        raw = dict(zip(quarantined.get_column("_line"), quarantined.get_column("_raw"), strict=True))
        assert raw[3] == "2,n,9.99,true,2026-01-01,2026-01-01T00:01:00Z"
