"""The shop pipeline's landing-files part, for the tests of the engine on files.

The built-in shop pipeline (lakehouse/pipelines/shop.yaml) also reads customers from the
shop's database, which needs its local sibling running; the many tests that exercise the
engine on landing files (faults, crashes, retries, maintenance …) run this part of it
instead, derived from the same file so the two never drift: its ``landing_files`` sources,
their datasets, and the gold models over them. ``tests/conftest.py`` points
``LAKEHOUSE_CONFIG`` at :data:`PATH` for the session (and its subprocesses); the tests of the
whole shop (tests/integration/test_shop_sources.py, the demo and serve) use the built-in file.
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path
from typing import Any

import yaml

from lakehouse.declaration import parse
from lakehouse.dev.shop import SHOP_YAML


def files_only(text: str) -> str:
    """``text`` (a declaration) with only its landing-files sources, their datasets and the models over them."""
    raw: dict[str, Any] = yaml.safe_load(text)
    for pipe in raw["pipelines"].values():
        pipe["sources"] = {n: s for n, s in pipe["sources"].items() if s.get("kind", "landing_files") == "landing_files"}
        dropped = {n for n, d in pipe["datasets"].items() if d["source"] not in pipe["sources"]}
        pipe["datasets"] = {n: d for n, d in pipe["datasets"].items() if n not in dropped}
        pipe["gold"] = {n: m for n, m in pipe.get("gold", {}).items()
                        if not set(re.findall(r"silver\.(\w+)", m["sql"])) & dropped}
    return yaml.safe_dump(raw, sort_keys=False)


SHOP_FILES_YAML = files_only(SHOP_YAML)
SHOP = parse(SHOP_FILES_YAML, path="<the shop's landing files>").pipeline("shop")
PATH = Path(tempfile.mkdtemp(prefix="lakehouse-shop-files-")) / "shop-files.yaml"
PATH.write_text(SHOP_FILES_YAML)
