"""``history: scd2`` declarations: a malformed one fails at load time (what ``lakehouse validate``
reports), naming the file, the path and what to change; a valid one makes the spec and its columns."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import yaml

from lakehouse.declaration import parse
from lakehouse.errors import ConfigError
from lakehouse.layers.silver import silver_schema

BASE: dict[str, Any] = yaml.safe_load("""
pipelines:
  crm:
    sources:
      drops: {prefix: crm}
    datasets:
      customers:
        source: drops
        columns: {customer_id: string, tier: string, email: string, updated_at: timestamp}
        key: customer_id
        order_by: updated_at
        history: scd2
        tracked: [tier]
    gold:
      current_tiers:
        partition_by: tier
        sql: SELECT tier, CAST(count(*) AS BIGINT) AS n FROM silver.customers WHERE is_current GROUP BY tier
""")
WHERE = "pipelines.crm.datasets.customers"


def customers(doc: dict[str, Any]) -> dict[str, Any]:
    return doc["pipelines"]["crm"]["datasets"]["customers"]


def with_(**changes: Any) -> str:
    doc = copy.deepcopy(BASE)
    for key, value in changes.items():
        if value is None:
            customers(doc).pop(key)
        else:
            customers(doc)[key] = value
    return yaml.safe_dump(doc, sort_keys=False)


CASES = [
    ("a tracked column that is not declared", with_(tracked=["tier", "city"]), f"{WHERE}.tracked", "'city' is not a column of customers (columns: customer_id, tier, email, updated_at)"),
    ("scd2 without order_by", with_(order_by=None), f"{WHERE}.history", "history: scd2 orders customers's versions by order_by: declare order_by"),
    ("scd2 without tracked", with_(tracked=None), f"{WHERE}.tracked", "history: scd2 needs tracked: [columns]"),
    ("scd2 with no tracked column", with_(tracked=[]), f"{WHERE}.tracked", "history: scd2 needs tracked: [columns]"),
    ("the key tracked", with_(tracked=["customer_id"]), f"{WHERE}.tracked", "'customer_id' is the key or the ordering column"),
    ("the ordering column tracked", with_(tracked=["updated_at"]), f"{WHERE}.tracked", "'updated_at' is the key or the ordering column"),
    ("a column tracked twice", with_(tracked=["tier", "tier"]), f"{WHERE}.tracked", "lists a column twice: tier, tier"),
    ("tracked without scd2", with_(history=None), f"{WHERE}.tracked", "tracked columns belong to history: scd2; customers is history: scd1"),
    ("an unknown history", with_(history="scd3"), f"{WHERE}.history", "'scd1' or 'scd2'"),
    ("a declared valid_to", with_(columns={"customer_id": "string", "tier": "string", "updated_at": "timestamp", "valid_to": "timestamp"}),
     f"{WHERE}.columns.valid_to", "'valid_to' is a column history: scd2 adds to customers: rename the declared column"),
    ("a declared is_current", with_(columns={"customer_id": "string", "tier": "string", "updated_at": "timestamp", "is_current": "bool"}),
     f"{WHERE}.columns.is_current", "'is_current' is a column history: scd2 adds"),
]


def incremental() -> str:
    doc = copy.deepcopy(BASE)
    model = doc["pipelines"]["crm"]["gold"]["current_tiers"]
    model.update(key="tier", incremental={"by": "customer_id", "count": "n"})
    return yaml.safe_dump(doc, sort_keys=False)


CASES.append((
    "an incremental model over an scd2 input", incremental(), "pipelines.crm.gold.current_tiers.incremental",
    "silver.customers keeps versions (history: scd2): leave incremental out",
))


@pytest.mark.parametrize(("text", "where", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_a_malformed_scd2_declaration_is_refused_saying_where_and_why(text: str, where: str, expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse(text, path="crm.yaml")
    lines = [line.strip() for line in str(caught.value).splitlines()]
    assert any(line.startswith(f"crm.yaml: {where}:") and expected in line for line in lines), str(caught.value)


def test_scd2_adds_the_version_columns_and_gold_models_see_them() -> None:
    pipeline = parse(yaml.safe_dump(BASE, sort_keys=False)).pipeline("crm")
    spec = pipeline.dataset("customers").spec
    assert spec.tracked == ("tier",)
    schema = silver_schema(spec)
    assert [(c.name, c.dtype) for c in spec.history_columns()] == [
        ("valid_from", "timestamp"), ("valid_to", "timestamp"), ("is_current", "bool"),
    ]
    assert {"valid_from", "valid_to", "is_current", "_absorbed"} <= set(schema.names)
    # the default stays SCD1: no version columns, so a model that reads one is refused where it is written
    text = with_(history=None, tracked=None)
    with pytest.raises(ConfigError, match=r"gold\.current_tiers\.sql: .*\"is_current\" not found"):
        parse(text)
    doc = yaml.safe_load(text)
    doc["pipelines"]["crm"].pop("gold")
    scd1 = parse(yaml.safe_dump(doc)).pipeline("crm").dataset("customers").spec
    assert scd1.tracked is None and scd1.history_columns() == ()
    assert "valid_from" not in silver_schema(scd1).names
    assert pipeline.models[0].spec.column_names == ["tier", "n"]
