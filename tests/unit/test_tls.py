"""TLS is verified by default; plain http only to loopback or when explicitly allowed.

Real boto3 clients, delta-rs storage options and DuckDB settings are inspected: no
network is needed, nothing is mocked.
"""

from __future__ import annotations

import pytest

from lakehouse.config import Settings
from lakehouse.duck import open_database
from lakehouse.errors import ConfigError
from lakehouse.storage import s3_client, storage_options

WAREHOUSE = "s3://bucket/warehouse"


def _settings(monkeypatch: pytest.MonkeyPatch, **env: str) -> Settings:
    for name in ("AWS_ENDPOINT_URL", "LAKEHOUSE_S3_VERIFY_TLS", "LAKEHOUSE_S3_ALLOW_HTTP", "AWS_ALLOW_HTTP",
                 "AWS_CA_BUNDLE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("LAKEHOUSE_WAREHOUSE", WAREHOUSE)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "id")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return Settings(_env_file=None)  # type: ignore[call-arg]


def _verify(client: object) -> object:
    return client._endpoint.http_session._verify  # type: ignore[attr-defined]


def test_tls_is_verified_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    for env in ({}, {"AWS_ENDPOINT_URL": "https://s3.example.com"}):
        settings = _settings(monkeypatch, **env)
        client = s3_client(settings)
        assert _verify(client) not in (False, None), env  # botocore's CA bundle path
        opts = storage_options(settings)
        assert "AWS_ALLOW_INVALID_CERTIFICATES" not in opts and "AWS_ALLOW_HTTP" not in opts, opts


def test_aws_ca_bundle_still_applies(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    bundle = tmp_path / "ca.pem"
    bundle.write_text("")
    settings = _settings(monkeypatch, AWS_ENDPOINT_URL="https://s3.example.com", AWS_CA_BUNDLE=str(bundle))
    assert _verify(s3_client(settings)) == str(bundle)


def test_verification_is_off_only_when_explicitly_disabled(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = _settings(monkeypatch, AWS_ENDPOINT_URL="https://minio.internal:9000", LAKEHOUSE_S3_VERIFY_TLS="false")
    assert _verify(s3_client(settings)) is False
    assert storage_options(settings)["AWS_ALLOW_INVALID_CERTIFICATES"] == "true"


@pytest.mark.parametrize("endpoint", ["http://127.0.0.1:5055", "http://localhost:9000", "http://[::1]:9000"])
def test_plain_http_is_accepted_for_loopback_endpoints(monkeypatch: pytest.MonkeyPatch, endpoint: str) -> None:
    settings = _settings(monkeypatch, AWS_ENDPOINT_URL=endpoint)
    assert s3_client(settings).meta.endpoint_url == endpoint  # type: ignore[attr-defined]
    assert storage_options(settings)["AWS_ALLOW_HTTP"] == "true"


def test_plain_http_to_another_host_is_refused_in_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = _settings(monkeypatch, AWS_ENDPOINT_URL="http://minio.internal:9000")
    for call in (s3_client, storage_options):
        with pytest.raises(ConfigError) as caught:
            call(settings)
        message = str(caught.value)
        assert "\n" not in message and "LAKEHOUSE_S3_ALLOW_HTTP=true" in message
        assert "secret" not in message


@pytest.mark.parametrize("allow", ["LAKEHOUSE_S3_ALLOW_HTTP", "AWS_ALLOW_HTTP"])
def test_plain_http_to_another_host_when_explicitly_allowed(monkeypatch: pytest.MonkeyPatch, allow: str) -> None:
    settings = _settings(monkeypatch, AWS_ENDPOINT_URL="http://minio.internal:9000", **{allow: "true"})
    assert s3_client(settings).meta.endpoint_url == "http://minio.internal:9000"  # type: ignore[attr-defined]
    assert storage_options(settings)["AWS_ALLOW_HTTP"] == "true"


def test_duckdb_verifies_server_certificates(monkeypatch: pytest.MonkeyPatch) -> None:
    def setting(con, name: str) -> str:
        return con.execute("SELECT current_setting(?)", [name]).fetchone()[0]

    settings = _settings(monkeypatch, AWS_ENDPOINT_URL="https://s3.example.com")
    con = open_database(settings, confine=False)
    assert setting(con, "enable_server_cert_verification") is True
    con.close()
    settings = _settings(monkeypatch, AWS_ENDPOINT_URL="https://s3.example.com", LAKEHOUSE_S3_VERIFY_TLS="false")
    con = open_database(settings, confine=False)
    assert setting(con, "enable_server_cert_verification") is False
    con.close()
