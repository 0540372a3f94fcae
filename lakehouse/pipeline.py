"""A pipeline ready to run, and every pipeline of a declaration file.

Made by the declaration (:mod:`lakehouse.declaration`) from its YAML: the datasets in
promotion order and the gold models (:mod:`lakehouse.specs`), the window length, the sources.
The engine reads these, never the YAML.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from lakehouse.errors import ConfigError
from lakehouse.specs import Dataset, GoldModel


@dataclass(frozen=True)
class Pipeline:
    """A pipeline ready to run: its datasets in promotion order, its gold models, its window length."""

    name: str
    interval: timedelta
    datasets: tuple[Dataset, ...]
    models: tuple[GoldModel, ...]
    sources: Mapping[str, Any] = field(default_factory=dict)
    """The declared sources by name (models of :mod:`lakehouse.sources.declared`)."""

    def dataset(self, name: str) -> Dataset:
        """The dataset ``name`` of this pipeline."""
        for d in self.datasets:
            if d.spec.name == name:
                return d
        raise KeyError(name)


@dataclass(frozen=True)
class Declaration:
    """Every pipeline of one declaration file (:func:`lakehouse.declaration.load`)."""

    path: str
    pipelines: dict[str, Pipeline]

    def pipeline(self, name: str | None = None) -> Pipeline:
        """The pipeline called ``name``; without a name, the only one."""
        if name is None:
            if len(self.pipelines) != 1:
                msg = (
                    f"{self.path} declares {len(self.pipelines)} pipelines "
                    f"({', '.join(self.pipelines)}): choose one with --pipeline NAME"
                )
                raise ConfigError(msg)
            return next(iter(self.pipelines.values()))
        if name not in self.pipelines:
            msg = f"{self.path}: no pipeline {name!r} (declared: {', '.join(self.pipelines)})"
            raise ConfigError(msg)
        return self.pipelines[name]
