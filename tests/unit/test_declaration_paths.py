"""Declaration errors that are the real error only, and landing prefixes confined to the root."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import yaml

from lakehouse.declaration import parse
from lakehouse.errors import ConfigError
from lakehouse.shop import SHOP_YAML

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
