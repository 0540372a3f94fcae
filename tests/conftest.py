"""Session-wide real services: one moto S3 server process and one Prefect API.

Both start once per test session (imports are slow here and Prefect's API takes seconds
to start); each warehouse gets a bucket of its own in the one moto server. moto lists a
bucket by walking every key in it, so a bucket shared by the whole session made every
Delta log listing slower as the session went on; a bucket per warehouse keeps a listing
as cheap as that warehouse is small.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

os.environ.setdefault("SODA_CORE_TELEMETRY_ENABLED", "false")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "90")
os.environ.setdefault("PREFECT_HOME", tempfile.mkdtemp(prefix="lakehouse-prefect-home-"))
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")

import pytest  # noqa: E402

from lakehouse.moto_server import MotoServer, start_moto_server  # noqa: E402


@pytest.fixture(scope="session")
def moto() -> Iterator[MotoServer]:
    """A moto S3 server process for the whole session, reached over HTTP."""
    server = start_moto_server()
    yield server
    server.stop()


def new_warehouse(moto: MotoServer, monkeypatch: pytest.MonkeyPatch, name: str = "lake") -> str:
    """A fresh ``s3://`` warehouse in a bucket of its own, configured through the environment."""
    bucket = f"{name}-{uuid.uuid4().hex[:12]}"
    moto.create_bucket(bucket)
    uri = f"s3://{bucket}/warehouse"
    for key, value in moto.env(uri).items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("LAKEHOUSE_LANDING", raising=False)
    return uri


@pytest.fixture(scope="session")
def prefect_api() -> Iterator[str]:
    """A real Prefect API for the session; its URL is exported for subprocesses too."""
    from prefect.settings import PREFECT_API_URL
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=90):
        url = PREFECT_API_URL.value()
        os.environ["PREFECT_API_URL"] = url
        yield url
        os.environ.pop("PREFECT_API_URL", None)


@pytest.fixture
def warehouse(moto: MotoServer, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh ``s3://`` warehouse in a moto bucket of its own, configured through the environment."""
    return new_warehouse(moto, monkeypatch)


@pytest.fixture
def local_warehouse(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A warehouse in a local folder."""
    uri = str(tmp_path / "warehouse")
    monkeypatch.setenv("LAKEHOUSE_WAREHOUSE", uri)
    monkeypatch.delenv("LAKEHOUSE_LANDING", raising=False)
    return uri
