"""Declaration errors that are the real error only, and landing prefixes confined to the root."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import yaml

from lakehouse.declaration import parse
from lakehouse.dev.shop import SHOP_YAML
from lakehouse.errors import ConfigError

BASE: dict[str, Any] = yaml.safe_load(SHOP_YAML)


def problems(change) -> list[str]:  # type: ignore[no-untyped-def]
    doc = copy.deepcopy(BASE)
    change(doc["pipelines"]["shop"])
    with pytest.raises(ConfigError) as info:
        parse(yaml.safe_dump(doc), path="my.yaml")
    return [line.strip() for line in str(info.value).splitlines()[1:]]


def test_an_unknown_column_type_is_the_only_error_reported() -> None:
    found = problems(lambda shop: shop["datasets"]["orders"]["columns"].__setitem__("customer_id", "int32"))
    assert found == [
        "my.yaml: pipelines.shop.datasets.orders.columns.customer_id.type: unknown type 'int32': "
        "expected one of string, int64, float64, bool, date, timestamp or decimal(p,s)"
    ], found


def test_a_model_reading_an_undeclared_table_is_still_reported() -> None:
    found = problems(lambda shop: shop["gold"]["daily_sales"].__setitem__("sql", "SELECT * FROM silver.nowhere"))
    assert len(found) == 1 and "reads silver.nowhere" in found[0], found


@pytest.mark.parametrize(("where", "prefix"), [
    ("datasets", "../../outside"), ("datasets", "orders/../../outside"), ("datasets", "/etc"), ("sources", "../up"),
])
def test_a_prefix_outside_the_landing_root_fails_validation(where: str, prefix: str) -> None:
    def change(shop: dict[str, Any]) -> None:
        if where == "datasets":
            shop["datasets"]["orders"]["prefix"] = prefix
        else:
            shop["sources"]["shop_files"]["prefix"] = prefix

    found = problems(change)
    assert len(found) == 1, found
    assert f".{where}." in found[0] and ".prefix: " in found[0] and "landing root" in found[0], found


def test_a_gold_model_that_reads_a_file_fails_validation_without_reading_it() -> None:
    for sql in ("SELECT o.order_date, t.content FROM silver.orders o, read_text('/etc/hostname') t",
                "SELECT o.order_date, p.column0 FROM silver.orders o, read_csv('/etc/passwd') p"):
        found = problems(lambda shop, sql=sql: shop["gold"]["daily_sales"].__setitem__("sql", sql))
        assert any("daily_sales.sql" in f and "file system operations are disabled" in f for f in found), found
        assert not any("root:" in f for f in found)  # nothing of the file reaches the message


def test_identifiers_are_validated_where_they_reach_sql() -> None:
    from lakehouse.specs import quote
    from lakehouse.sql import in_list

    assert quote("order_date") == '"order_date"'
    for bad in ('a"; DROP TABLE x; --', "a b", "", "1a"):
        with pytest.raises(ValueError):
            quote(bad)
    assert in_list("region", ["it's", None]) == "(\"region\" IN ('it''s') OR \"region\" IS NULL)"
