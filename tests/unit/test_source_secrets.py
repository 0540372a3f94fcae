"""Sources read secrets by reference: an environment variable or a Prefect Secret block, never inline."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from lakehouse.errors import ConfigError
from lakehouse.sources import secrets
from lakehouse.sources.declared import SecretRef


def test_an_environment_reference_resolves_to_a_secret_value(monkeypatch) -> None:
    monkeypatch.setenv("SHOP_TOKEN_FOR_TEST", "s3cr3t-value")
    value = secrets.resolve(SecretRef(env="SHOP_TOKEN_FOR_TEST"), what="sources.api.auth.token")
    assert value.get_secret_value() == "s3cr3t-value"
    assert "s3cr3t" not in repr(value) and "s3cr3t" not in str(value)


def test_an_unset_reference_names_the_variable_and_where_it_is_declared(monkeypatch) -> None:
    monkeypatch.delenv("SHOP_TOKEN_FOR_TEST", raising=False)
    with pytest.raises(ConfigError, match=r"sources\.api\.auth\.token: the environment variable SHOP_TOKEN_FOR_TEST .* is not set"):
        secrets.resolve(SecretRef(env="SHOP_TOKEN_FOR_TEST"), what="sources.api.auth.token")


def test_a_reference_names_exactly_one_place() -> None:
    with pytest.raises(ValidationError, match="exactly one of env"):
        SecretRef()
    with pytest.raises(ValidationError, match="exactly one of env"):
        SecretRef(env="A", prefect_secret="b")


def test_a_prefect_block_is_read_by_the_registered_resolver_and_a_failure_does_not_echo_it(monkeypatch) -> None:
    monkeypatch.setattr(secrets, "_RESOLVERS", {})
    ref = SecretRef(prefect_secret="shop-api-token")
    with pytest.raises(ConfigError, match="only a run under Prefect"):
        secrets.resolve(ref, what="sources.api.auth.token")
    secrets.register_resolver("prefect_secret", lambda name: {"shop-api-token": "tok-123"}[name])
    assert secrets.resolve(ref, what="x").get_secret_value() == "tok-123"

    def broken(name: str) -> str:
        raise ValueError("token tok-123 is malformed")  # a resolver whose error holds the value

    secrets.register_resolver("prefect_secret", broken)
    with pytest.raises(ConfigError) as failed:
        secrets.resolve(ref, what="x")
    assert "tok-123" not in str(failed.value) and "shop-api-token" in str(failed.value)
