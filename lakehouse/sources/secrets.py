"""Secrets that sources read by reference (:class:`lakehouse.declaration.sources.SecretRef`).

An environment variable is read here. A Prefect Secret block is read by a resolver that the
Prefect layer registers (``tasks`` imports :func:`register_resolver`), so the engine itself
imports no Prefect (DESIGN.md, invariant 6). The value comes back as a ``SecretStr``: it is
unwrapped only where it is sent, and a message names the reference, never the value.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Protocol

from pydantic import SecretStr

from lakehouse.errors import ConfigError


class SecretRef(Protocol):
    """A reference to a secret (:class:`lakehouse.declaration.sources.SecretRef`): exactly one is set."""

    @property
    def env(self) -> str | None:
        """The environment variable holding the secret."""
        ...

    @property
    def prefect_secret(self) -> str | None:
        """The Prefect Secret block holding the secret."""
        ...

Resolver = Callable[[str], str]

_RESOLVERS: dict[str, Resolver] = {}


def register_resolver(kind: str, resolver: Resolver) -> None:
    """Resolve references of ``kind`` (``prefect_secret``) with ``resolver(name) -> value``."""
    _RESOLVERS[kind] = resolver


def resolve(ref: SecretRef, *, what: str) -> SecretStr:
    """The value ``ref`` names; ``ConfigError`` naming ``what`` and the reference when it has none."""
    if ref.env is not None:
        value = os.environ.get(ref.env)
        if not value:
            msg = f"{what}: the environment variable {ref.env} (its secret) is not set"
            raise ConfigError(msg)
        return SecretStr(value)
    assert ref.prefect_secret is not None
    resolver = _RESOLVERS.get("prefect_secret")
    if resolver is None:
        msg = f"{what}: prefect_secret:{ref.prefect_secret} is a Prefect Secret block, which only a run under Prefect (lakehouse run, a deployment) can read"
        raise ConfigError(msg)
    try:
        value = resolver(ref.prefect_secret)
    except Exception as exc:  # the block is missing or unreadable: say which, not what it holds
        msg = f"{what}: the Prefect Secret block {ref.prefect_secret!r} could not be read ({type(exc).__name__})"
        raise ConfigError(msg) from None
    return SecretStr(value)
