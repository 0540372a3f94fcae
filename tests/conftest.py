"""Session-wide real services: one moto S3 server process and one Prefect API.

Both start once per test session (imports are slow here and Prefect's API takes seconds
to start); each test gets its own warehouse prefix in the shared bucket.
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

BUCKET = "lake"


@pytest.fixture(scope="session")
def moto() -> Iterator[MotoServer]:
    """A moto S3 server process for the whole session, reached over HTTP."""
    server = start_moto_server()
    server.create_bucket(BUCKET)
    yield server
    server.stop()


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
    """A fresh ``s3://`` warehouse in the moto bucket, configured through the environment."""
    uri = f"s3://{BUCKET}/{uuid.uuid4().hex[:12]}"
    for key, value in moto.env(uri).items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("LAKEHOUSE_LANDING", raising=False)
    return uri


@pytest.fixture
def local_warehouse(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A warehouse in a local folder."""
    uri = str(tmp_path / "warehouse")
    monkeypatch.setenv("LAKEHOUSE_WAREHOUSE", uri)
    monkeypatch.delenv("LAKEHOUSE_LANDING", raising=False)
    return uri
