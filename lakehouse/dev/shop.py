"""The default pipeline, the online shop, as loaded from its declaration.

The declaration itself is ``lakehouse/pipelines/shop.yaml``; this module only names its
parts for code and tests that want them directly.
"""

from __future__ import annotations

from importlib import resources

from lakehouse.declaration import parse

SHOP_YAML = resources.files("lakehouse").joinpath("pipelines/shop.yaml").read_text()
SHOP = parse(SHOP_YAML, path="<built-in shop pipeline>").pipeline("shop")

ORDERS = SHOP.dataset("orders").spec
ORDER_ITEMS = SHOP.dataset("order_items").spec
PRODUCTS = SHOP.dataset("products").spec
DAILY_SALES = next(m for m in SHOP.models if m.spec.name == "daily_sales")
ORDER_STATUSES = ("placed", "paid", "shipped", "delivered", "cancelled")
