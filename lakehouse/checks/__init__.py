"""Kinds of quality check: one module per kind, in a registry (:mod:`lakehouse.checks.base`).

The built-in kinds, in the order the declaration's messages list them (their ``order``):
``missing``, ``valid_values``, ``range``, ``duplicate``, ``reference``, ``freshness``,
``row_count``, ``schema``. A new kind is one module that subclasses :class:`CheckKind` and
registers it (importing the module registers it); nothing else changes.
"""

from __future__ import annotations

# each module registers its kind when imported
from lakehouse.checks import (  # noqa: F401
    duplicate,
    freshness,
    missing,
    reference,
    row_count,
    schema,
    valid_values,
)
from lakehouse.checks import range as range_check  # noqa: F401
from lakehouse.checks.base import (
    CheckKind,
    Contract,
    Declared,
    References,
    kind_of,
    kinds,
    register,
    unregister,
    version,
)

__all__ = [
    "CheckKind", "Contract", "Declared", "References", "kind_of", "kinds", "register", "unregister", "version",
]
