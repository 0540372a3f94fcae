"""Malformed declarations fail at load time, naming the file, the path and the expectation."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import yaml

from lakehouse.declaration import load, parse
from lakehouse.dev.shop import SHOP_YAML
from lakehouse.errors import ConfigError

BASE: dict[str, Any] = yaml.safe_load(SHOP_YAML)


def variant(change) -> str:  # type: ignore[no-untyped-def]
    doc = copy.deepcopy(BASE)
    change(doc)
    return yaml.safe_dump(doc)


def shop(doc: dict[str, Any]) -> dict[str, Any]:
    return doc["pipelines"]["shop"]


def orders(doc: dict[str, Any]) -> dict[str, Any]:
    return shop(doc)["datasets"]["orders"]


def model(doc: dict[str, Any]) -> dict[str, Any]:
    return shop(doc)["gold"]["daily_sales"]


def alerts(doc: dict[str, Any]) -> dict[str, Any]:
    return shop(doc)["gold"]["low_stock_alerts"]


def setter(get, key: str, value: Any):  # type: ignore[no-untyped-def]
    return lambda doc: get(doc).__setitem__(key, value)


def deleter(get, key: str):  # type: ignore[no-untyped-def]
    return lambda doc: get(doc).pop(key)


CASES = [
    ("key names no column", setter(orders, "key", "order_idd"), "pipelines.shop.datasets.orders.key", "'order_idd' is not a column"),
    ("one of a composite key names no column", lambda d: shop(d)["datasets"]["order_items"].__setitem__("key", ["order_id", "line"]), "pipelines.shop.datasets.order_items.key", "'line' is not a column"),
    ("key missing", deleter(orders, "key"), "pipelines.shop.datasets.orders.key", "required field is missing"),
    ("empty key", setter(orders, "key", []), "pipelines.shop.datasets.orders.key", "needs a business key"),
    ("unknown type", lambda d: orders(d)["columns"].__setitem__("status", "text"), "pipelines.shop.datasets.orders.columns.status.type", "unknown type 'text'"),
    ("decimal out of range", lambda d: orders(d)["columns"].__setitem__("status", "decimal(50,2)"), "pipelines.shop.datasets.orders.columns.status.type", "precision 1–38"),
    ("decimal scale above precision", lambda d: orders(d)["columns"].__setitem__("status", "decimal(4,6)"), "columns.status.type", "scale ≤ precision"),
    ("bad column name", lambda d: orders(d)["columns"].__setitem__("order id", "string"), "pipelines.shop.datasets.orders.columns.order id", "not a valid column name"),
    ("order_by names no column", setter(orders, "order_by", "changed_at"), "pipelines.shop.datasets.orders.order_by", "'changed_at' is not a column"),
    ("order_by of a string column", setter(orders, "order_by", "status"), "pipelines.shop.datasets.orders.order_by", "must be a timestamp"),
    ("partition_by names no column", setter(orders, "partition_by", "day"), "pipelines.shop.datasets.orders.partition_by", "'day' is not a column"),
    ("unknown source", setter(orders, "source", "ftp"), "pipelines.shop.datasets.orders.source", "no source 'ftp'"),
    ("unknown dataset field", setter(orders, "keys", ["order_id"]), "pipelines.shop.datasets.orders.keys", "unknown field"),
    ("unknown source format", lambda d: shop(d)["sources"]["shop_files"].__setitem__("format", "xml"), "pipelines.shop.sources.shop_files.format", "'jsonl', 'csv' or 'parquet'"),
    ("bad interval", lambda d: shop(d)["sources"]["shop_files"].__setitem__("interval", "15 minutes"), "pipelines.shop.sources.shop_files.interval", "an interval such as 5m"),
    ("unknown_fields: another word", setter(orders, "unknown_fields", "ignore"), "pipelines.shop.datasets.orders.unknown_fields", "'warn', 'fail' or 'evolve'"),
    ("strings_as_numbers on a string column", lambda d: orders(d)["columns"].__setitem__("status", {"type": "string", "strings_as_numbers": True}), "columns.status.strings_as_numbers", "applies to int64 and float64 columns"),
    ("strings_as_numbers not a bool", setter(orders, "strings_as_numbers", "sometimes"), "pipelines.shop.datasets.orders.strings_as_numbers", "valid boolean"),
    ("interval too long", lambda d: shop(d)["sources"]["shop_files"].__setitem__("interval", "48h"), "pipelines.shop.sources.shop_files", "between 1m and 24h"),
    ("check names no column", lambda d: orders(d)["checks"].append({"missing": "customer"}), "pipelines.shop.datasets.orders.checks[8]", "'customer' is not a column"),
    ("check with two kinds", lambda d: orders(d)["checks"].append({"missing": "status", "range": "status"}), "pipelines.shop.datasets.orders.checks[8]", "exactly one of"),
    ("check with no kind", lambda d: orders(d)["checks"].append({"level": "warn"}), "pipelines.shop.datasets.orders.checks[8]", "found none"),
    ("valid_values without values", lambda d: orders(d)["checks"].append({"valid_values": "status"}), "pipelines.shop.datasets.orders.checks[8]", "needs 'values"),
    ("range without bounds", lambda d: shop(d)["datasets"]["order_items"]["checks"].append({"range": "quantity"}), "checks[11]", "needs 'min', 'max'"),
    ("range min above max", lambda d: shop(d)["datasets"]["order_items"]["checks"].append({"range": "quantity", "min": 5, "max": 1}), "checks[11]", "above max"),
    ("range on a string column", lambda d: orders(d)["checks"].append({"range": "status", "min": 0}), "pipelines.shop.datasets.orders.checks[8]", "needs a numeric column"),
    ("bad level", lambda d: orders(d)["checks"].append({"missing": "status", "level": "error"}), "pipelines.shop.datasets.orders.checks[8].level", "'fail' or 'warn'"),
    ("max_percent over 100", lambda d: orders(d)["checks"].append({"missing": "status", "max_percent": 150}), "pipelines.shop.datasets.orders.checks[8].max_percent", "less than or equal to 100"),
    ("reference to an unknown dataset", lambda d: shop(d)["datasets"]["order_items"]["checks"].append({"reference": "order_id", "dataset": "invoices"}), "checks[11].dataset", "no dataset 'invoices'"),
    ("reference without dataset", lambda d: shop(d)["datasets"]["order_items"]["checks"].append({"reference": "order_id"}), "checks[11]", "needs 'dataset"),
    ("reference to a column the dataset lacks", lambda d: shop(d)["datasets"]["order_items"]["checks"].append({"reference": "product_id", "dataset": "products", "column": "sku"}), "checks[11].column", "'sku' is not a column of products"),
    ("reference to a composite key", lambda d: shop(d)["datasets"]["orders"]["checks"].append({"reference": "order_id", "dataset": "order_items"}), "checks[8].column", "key of several columns"),
    ("references form a cycle", lambda d: shop(d)["datasets"]["products"]["checks"].append({"reference": "product_id", "dataset": "order_items", "column": "product_id"}), "pipelines.shop.datasets", "cycle (products → order_items → products)"),
    ("reference options on another kind", lambda d: orders(d)["checks"].append({"missing": "status", "dataset": "products"}), "checks[8]", "belong to a reference check"),
    ("freshness without max_age", lambda d: orders(d)["checks"].append({"freshness": "updated_at"}), "checks[8]", "needs 'max_age'"),
    ("freshness of a string column", lambda d: orders(d)["checks"].append({"freshness": "status", "max_age": "1h"}), "checks[8]", "needs a timestamp or date column"),
    ("max_age on another kind", lambda d: orders(d)["checks"].append({"missing": "status", "max_age": "1h"}), "checks[8]", "belongs to a freshness check"),
    ("freshness on a gold model", lambda d: model(d)["checks"].append({"freshness": "order_date", "max_age": "1h"}), "gold.daily_sales.checks[7]", "belong to datasets"),
    ("derive from a non-timestamp", lambda d: orders(d)["columns"].__setitem__("order_date", {"type": "date", "derive": "date(status)"}), "columns.order_date.derive", "needs a timestamp column"),
    ("unknown derivation", lambda d: orders(d)["columns"].__setitem__("order_date", {"type": "date", "derive": "month(ordered_at)"}), "columns.order_date.derive", "unknown derivation"),
    ("model SQL does not parse", setter(model, "sql", "SELEC 1"), "pipelines.shop.gold.daily_sales.sql", "does not parse"),
    ("model reads an unknown table", setter(model, "sql", "select * from silver.invoices"), "pipelines.shop.gold.daily_sales.sql", "silver.invoices"),
    ("model SQL names an unknown column", setter(model, "sql", "select order_day from silver.orders"), "pipelines.shop.gold.daily_sales.sql", "does not run against the declared silver schemas"),
    ("model partition not in result", setter(model, "partition_by", "day"), "pipelines.shop.gold.daily_sales.partition_by", "'day' is not a column of the model's result"),
    ("model result type unsupported", setter(model, "sql", "select order_date, sum(1) as n from silver.orders group by 1"), "pipelines.shop.gold.daily_sales.sql", "HUGEINT"),
    ("model named like a dataset", lambda d: shop(d)["gold"].__setitem__("orders", model(d)), "pipelines.shop.gold.orders", "also a dataset"),
    ("event name not dotted words", setter(alerts, "event", {"name": "Stock Low"}), "pipelines.shop.gold.low_stock_alerts.event.name", "'Stock Low' is not an event name: dotted lower-case words"),
    ("event without a name", setter(alerts, "event", {"resource_name": "product_id"}), "pipelines.shop.gold.low_stock_alerts.event.name", "required field is missing"),
    ("event with an unknown field", setter(alerts, "event", {"name": "lakehouse.stock.low", "resource": "product_id"}), "pipelines.shop.gold.low_stock_alerts.event.resource", "unknown field"),
    ("event resource_name names no column", setter(alerts, "event", {"name": "lakehouse.stock.low", "resource_name": "sku"}), "pipelines.shop.gold.low_stock_alerts.event.resource_name", "'sku' is not a column of the model's result"),
    ("event on a model without a key", lambda d: (alerts(d).pop("key"), alerts(d)["checks"].pop(2)), "pipelines.shop.gold.low_stock_alerts.event", "needs a key"),
    ("touched: another word", setter(alerts, "touched", "all"), "pipelines.shop.gold.low_stock_alerts.touched", "'result' or 'inputs'"),
    ("touched: inputs where an input lacks the partition column", setter(model, "touched", "inputs"), "pipelines.shop.gold.daily_sales.touched", "silver.order_items, silver.product_history have none"),
    ("target_file_size too small", setter(orders, "target_file_size", 1000), "pipelines.shop.datasets.orders.target_file_size", "greater than or equal to 65536"),
    ("no datasets", lambda d: shop(d).__setitem__("datasets", {}), "pipelines.shop.datasets", "at least one dataset"),
    ("pipelines missing", lambda d: d.pop("pipelines"), "pipelines", "required field is missing"),
]


@pytest.mark.parametrize(("name", "change", "where", "expected"), CASES, ids=[c[0] for c in CASES])
def test_malformed_declarations_fail_at_load_time(name: str, change, where: str, expected: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ConfigError) as info:
        parse(variant(change), path="my.yaml")
    message = str(info.value)
    assert "my.yaml: " in message, message
    line = next((line for line in message.splitlines() if where in line), None)
    assert line is not None, f"{where!r} not in:\n{message}"
    assert expected in line, f"{expected!r} not in {line!r}"


def test_not_yaml_and_not_a_mapping() -> None:
    with pytest.raises(ConfigError, match="my.yaml: not valid YAML"):
        parse("pipelines: [", path="my.yaml")
    with pytest.raises(ConfigError, match="expected a mapping"):
        parse("- 1", path="my.yaml")


def test_the_shop_declaration_is_valid_and_derives_everything() -> None:
    pipeline = parse(SHOP_YAML).pipeline()
    orders_spec = pipeline.dataset("orders").spec
    assert orders_spec.keys == ("order_id",) and orders_spec.partition_by == "order_date"
    assert pipeline.dataset("order_items").spec.column("unit_price").decimal == (12, 2)
    daily, categories, levels, alerts = pipeline.models
    assert daily.inputs == ("order_items", "orders", "product_history")
    assert daily.spec.column("revenue").dtype == "decimal(18,2)" and daily.spec.keys == ("order_date", "product_id", "category")
    assert categories.inputs == ("order_items", "orders", "product_history", "customers")
    assert pipeline.dataset("product_history").spec.tracked == ("name", "category", "unit_price")
    assert levels.inputs == ("inventory_events", "stock_policies") and alerts.touched_by_inputs
    assert alerts.spec.keys == ("product_id", "crossed_at", "event_id")
    assert alerts.event == "lakehouse.stock.low" and alerts.event_resource == "product_id"


def test_load_prefers_the_named_file_then_the_environment(tmp_path, monkeypatch) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(SHOP_YAML)
    assert load(path).path == str(path)
    monkeypatch.setenv("LAKEHOUSE_CONFIG", str(path))
    assert load().path == str(path)
    monkeypatch.setenv("LAKEHOUSE_CONFIG", str(tmp_path / "absent.yaml"))
    with pytest.raises(ConfigError, match="does not exist"):
        load()


def test_several_pipelines_need_a_name() -> None:
    doc = copy.deepcopy(BASE)
    doc["pipelines"]["shop2"] = doc["pipelines"]["shop"]
    declaration = parse(yaml.safe_dump(doc))
    with pytest.raises(ConfigError, match="--pipeline"):
        declaration.pipeline()
    assert declaration.pipeline("shop2").name == "shop2"


def test_declared_value_policies_reach_the_spec() -> None:
    def change(doc: dict[str, Any]) -> None:
        items = shop(doc)["datasets"]["order_items"]
        items["strings_as_numbers"] = True
        items["columns"]["line_no"] = {"type": "int64", "nullable": False, "strings_as_numbers": False}
        orders(doc)["unknown_fields"] = "fail"
        shop(doc)["sources"]["shop_files"]["format"] = "csv"

    pipeline = parse(variant(change)).pipeline()
    items = pipeline.dataset("order_items").spec
    assert items.column("quantity").strings_as_numbers and not items.column("line_no").strings_as_numbers
    assert not items.column("unit_price").strings_as_numbers  # a decimal takes strings anyway
    assert pipeline.dataset("orders").spec.unknown_fields == "fail" and items.unknown_fields == "warn"
    assert items.record_values == "text"  # CSV: every value is text
    assert parse(SHOP_YAML).pipeline().dataset("orders").spec.record_values == "json"
    # silver's file size: 4 MiB unless declared (lakehouse.specs.SILVER_FILE_SIZE)
    assert pipeline.dataset("orders").spec.target_file_size == 4 * 1024 * 1024
    sized = parse(variant(setter(orders, "target_file_size", 16 * 1024 * 1024))).pipeline().dataset("orders")
    assert sized.spec.target_file_size == 16 * 1024 * 1024


def test_the_shop_files_part_drops_the_models_over_other_sources() -> None:
    from lakehouse.dev.shop import shop_files

    part = shop_files()
    assert [m.spec.name for m in part.models] == ["daily_sales"]  # stock_levels, low_stock_alerts read the stream and database
    assert "stock_policies" not in {d.spec.name for d in part.datasets}
