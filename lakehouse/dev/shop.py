"""The default pipeline, the online shop, as loaded from its declaration.

The declaration itself is ``lakehouse/pipelines/shop.yaml``; this module only names its
parts for code and tests that want them directly.
"""

from __future__ import annotations

import re
from importlib import resources
from typing import Any

import yaml

from lakehouse.declaration import parse
from lakehouse.pipeline import Pipeline


def files_only(text: str) -> str:
    """``text`` (a declaration) with only its landing-files sources, their datasets and the models over them.

    The shop's other sources (its SQL database, Kinesis stream and HTTP API) need their local
    siblings running; the engine's tests on files and the soak run this part of the shop.
    """
    raw: dict[str, Any] = yaml.safe_load(text)
    for pipe in raw["pipelines"].values():
        pipe["sources"] = {n: s for n, s in pipe["sources"].items() if s.get("kind", "landing_files") == "landing_files"}
        dropped = {n for n, d in pipe["datasets"].items() if d["source"] not in pipe["sources"]}
        pipe["datasets"] = {n: d for n, d in pipe["datasets"].items() if n not in dropped}
        pipe["gold"] = {n: m for n, m in pipe.get("gold", {}).items()
                        if not set(re.findall(r"silver\.(\w+)", m["sql"])) & dropped}
    return yaml.safe_dump(raw, sort_keys=False)


def shop_files() -> Pipeline:
    """The landing-files part of the built-in shop pipeline (:func:`files_only`)."""
    return parse(files_only(SHOP_YAML), path="<the shop's landing files>").pipeline("shop")


SHOP_YAML = resources.files("lakehouse").joinpath("pipelines/shop.yaml").read_text()
SHOP = parse(SHOP_YAML, path="<built-in shop pipeline>").pipeline("shop")

ORDERS = SHOP.dataset("orders").spec
ORDER_ITEMS = SHOP.dataset("order_items").spec
PRODUCTS = SHOP.dataset("products").spec
DAILY_SALES = next(m for m in SHOP.models if m.spec.name == "daily_sales")
ORDER_STATUSES = ("placed", "paid", "shipped", "delivered", "cancelled")
