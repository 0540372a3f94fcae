"""Pipelines declared in one YAML file: sources, datasets, checks and gold SQL models.

The file is validated when it is loaded, by typed models (:mod:`.schema`) and then by
cross-references (:mod:`.build`: a key must name a column, a check a column, a model an
existing silver table …). Every problem is reported with the file, the path inside it and
what was expected (:mod:`.errors`)::

    lakehouse.yaml: pipelines.shop.datasets.orders.key: 'order_idd' is not a column of
    orders (columns: order_id, customer_id, …)

Everything else — bronze and silver schemas, merge predicates, Soda contracts, row-level
rules, gold recomputation, the CLI's table names — is derived from what is loaded here, the
loaded form of :mod:`lakehouse.specs`; the engine imports specs, not this package.
"""

from __future__ import annotations

import functools
import re
from importlib import resources
from pathlib import Path

from lakehouse.declaration.build import DEFAULT_FILE, parse
from lakehouse.errors import ConfigError
from lakehouse.pipeline import Declaration, Pipeline
from lakehouse.specs import Dataset, GoldModel

__all__ = ["DEFAULT_FILE", "Dataset", "Declaration", "GoldModel", "Pipeline", "load", "parse"]


def _parse_once(text: str, path: str) -> Declaration:
    """:func:`parse`, remembered by text and by the values of the variables it names: a flow run
    loads its declaration several times (run name, window, tasks), and the gold models' DuckDB
    type inference is not free."""
    import os

    names = tuple(sorted(set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)", text))))
    return _parse_cached(text, path, tuple(os.environ.get(n) for n in names))


@functools.lru_cache(maxsize=16)
def _parse_cached(text: str, path: str, values: tuple[str | None, ...]) -> Declaration:  # noqa: ARG001
    """``values`` (of the variables ``text`` names) is only part of the cache's key."""
    return parse(text, path=path)


def load(path: str | Path | None = None) -> Declaration:
    """Load ``path``, else ``$LAKEHOUSE_CONFIG``, else ``./lakehouse.yaml``, else the shop."""
    import os

    chosen = path or os.environ.get("LAKEHOUSE_CONFIG")
    if chosen is None and Path(DEFAULT_FILE).exists():
        chosen = DEFAULT_FILE
    if chosen is None:
        text = resources.files("lakehouse").joinpath("pipelines/shop.yaml").read_text()
        return _parse_once(text, "<built-in shop pipeline>")
    file = Path(chosen)
    if not file.exists():
        msg = f"configuration file {file} does not exist"
        raise ConfigError(msg)
    return _parse_once(file.read_text(), str(file))
