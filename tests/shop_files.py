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

import tempfile
from pathlib import Path

from lakehouse.declaration import parse
from lakehouse.dev.shop import SHOP_YAML, files_only

__all__ = ["PATH", "SHOP", "SHOP_FILES_YAML", "files_only"]

SHOP_FILES_YAML = files_only(SHOP_YAML)
SHOP = parse(SHOP_FILES_YAML, path="<the shop's landing files>").pipeline("shop")
PATH = Path(tempfile.mkdtemp(prefix="lakehouse-shop-files-")) / "shop-files.yaml"
PATH.write_text(SHOP_FILES_YAML)
