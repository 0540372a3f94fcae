"""A distinctive secret appears nowhere: output, Prefect logs, artifacts, events, flow-run
parameters and states, exceptions, the Prefect database, the warehouse.

The credentials are set to strings that cannot occur by chance; moto accepts any. Three
real flow runs go through the session's Prefect API: a window that succeeds (through the
``lakehouse`` command, in this process) and a run that fails because its warehouse bucket
does not exist (the storage error path, with its exception, failed states, error logs and
``lakehouse.run.failed`` event). Then everything the API holds
is read back as JSON text, the harness's SQLite database as bytes, and every object of the
warehouse (Parquet files by their values and metadata, since their pages may be compressed;
everything else, ``_delta_log`` included, as bytes), and searched for either string.
"""

from __future__ import annotations

import io
import json
import logging
import time
import traceback
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pyarrow.parquet as pq
import pytest

from lakehouse.dev.moto_server import MotoServer
from tests.conftest import new_warehouse
from tests.e2e.test_cli import invoke
from tests.integration.helpers import land, window_end


def _s3(moto: MotoServer) -> Any:
    import boto3

    return boto3.client("s3", endpoint_url=moto.endpoint_url, aws_access_key_id="x", aws_secret_access_key="x",
                        region_name="us-east-1")


def _warehouse_texts(moto: MotoServer, bucket: str) -> dict[str, str]:
    """Every object of ``bucket`` as searchable text: a Parquet file's values and metadata, else its bytes."""
    client = _s3(moto)
    out = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for obj in page.get("Contents", []):
            data = client.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()
            text = data.decode("latin-1")
            if obj["Key"].endswith(".parquet"):
                table = pq.read_table(io.BytesIO(data))
                text += json.dumps(table.to_pylist(), default=str) + str(pq.read_metadata(io.BytesIO(data)).metadata)
            out[obj["Key"]] = text
    return out


def _api_dump(api: str, since: datetime) -> dict[str, str]:
    """What the Prefect API holds since ``since``, as JSON text per kind."""
    after = {"after_": since.isoformat()}
    out = {}
    with httpx.Client(base_url=api, timeout=30) as client:

        def every(path: str, body: dict[str, Any]) -> str:
            pages, offset = [], 0
            while True:
                page = client.post(path, json={**body, "limit": 200, "offset": offset})
                page.raise_for_status()
                pages.append(page.text)
                if len(page.json()) < 200:
                    return "".join(pages)
                offset += 200

        out["flow_runs"] = every("/flow_runs/filter", {"flow_runs": {"start_time": after}})
        runs = [r["id"] for r in json.loads(out["flow_runs"])]
        out["task_runs"] = every("/task_runs/filter", {"flow_runs": {"id": {"any_": runs}}})
        out["logs"] = every("/logs/filter", {"logs": {"flow_run_id": {"any_": runs}}})
        out["artifacts"] = every("/artifacts/filter", {"flow_runs": {"id": {"any_": runs}}})
        out["variables"] = every("/variables/filter", {})
        out["block_documents"] = every("/block_documents/filter", {"include_secrets": True})
        events = client.post("/events/filter", json={"filter": {"occurred": {"since": since.isoformat()}}, "limit": 50})
        events.raise_for_status()
        out["events"] = events.text
        while (page := events.json()).get("next_page"):
            events = client.get(page["next_page"])
            out["events"] += events.text
        for run in runs:
            out[f"states {run}"] = client.get("/flow_run_states/", params={"flow_run_id": run}).text
    return out


@contextmanager
def _shipping_info() -> Iterator[None]:
    """The runs' INFO logs shipped too (the session ships WARNING and up).

    ``setLevel``, not an assignment to ``level``: a logger caches what ``isEnabledFor``
    answered, and only ``setLevel`` clears that cache; after an earlier test of the
    session had logged at INFO, an assigned level left INFO switched off.
    """
    loggers = [logging.getLogger(name) for name in ("prefect.flow_runs", "prefect.task_runs")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def _complete(api: dict[str, str]) -> bool:
    """The dump holds what the two runs sent: the failure's event and both runs' logs."""
    return "lakehouse.run.failed" in api["events"] and "silver.orders" in api["logs"] and "StorageMissing" in api["logs"]


def _exception_text(exc: BaseException) -> str:
    return "".join(traceback.format_exception(exc)) + repr(exc)


def test_a_distinctive_secret_appears_nowhere(moto: MotoServer, prefect_api: str, monkeypatch: pytest.MonkeyPatch,
                                              capfd: pytest.CaptureFixture[str]) -> None:
    from prefect.logging.handlers import APILogHandler
    from prefect.settings import PREFECT_SERVER_DATABASE_CONNECTION_URL

    from flows.microbatch import micro_batch

    secret = f"lakehouse-SECRET-{uuid.uuid4().hex}"
    key_id = f"AKIAPROBE{uuid.uuid4().hex[:11].upper()}"
    began = datetime.now(UTC) - timedelta(seconds=5)
    uri = new_warehouse(moto, monkeypatch, "secrets")
    bucket = uri.split("/")[2]
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", key_id)
    land(1)
    with _shipping_info():
        ok = invoke("run", "--at", window_end(1).isoformat())
        assert ok.exit_code == 0, ok.output[-2000:]

        monkeypatch.setenv("LAKEHOUSE_WAREHOUSE", f"s3://no-such-bucket-{uuid.uuid4().hex[:8]}/warehouse")
        failed = micro_batch(at=window_end(1), interval="15m", return_state=True)
        assert failed.is_failed()
        error = failed.result(raise_on_failure=False)
        assert isinstance(error, BaseException) and "does not exist" in str(error)

        APILogHandler().flush()  # the log worker sends what it holds, and waits
    seen: dict[str, str] = {
        "cli run": ok.output, "exception of the failed run": _exception_text(error), "failed state": failed.message or "",
    }
    captured = capfd.readouterr()
    seen["captured stdout"], seen["captured stderr"] = captured.out, captured.err
    api = _api_dump(prefect_api, began)
    deadline = time.monotonic() + 30
    while not _complete(api) and time.monotonic() < deadline:
        time.sleep(0.5)  # events and logs reach the API's database asynchronously (slower under load)
        api = _api_dump(prefect_api, began)
    seen |= {f"api {kind}": text for kind, text in api.items()}
    # the dump is not vacuous: it holds the runs, their logs, artifacts and the gate's event
    # (at least these two runs: the session's API also holds runs that other tests and the
    # session's background processes started meanwhile)
    assert api["flow_runs"].count('"parameters":{"at"') >= 2, api["flow_runs"][:500]
    assert "batch-summary" in api["artifacts"], api["artifacts"][:300]
    assert "lakehouse.run.failed" in api["events"], api["events"][:300]
    assert "silver.orders" in api["logs"] and "StorageMissing" in api["logs"], api["logs"][:300]
    database = Path(PREFECT_SERVER_DATABASE_CONNECTION_URL.value().split(":///", 1)[1])
    for path in database.parent.glob(database.name + "*"):  # the database and its WAL
        seen[f"prefect database {path.name}"] = path.read_bytes().decode("latin-1")
    tables = _warehouse_texts(moto, bucket)
    assert any("/_delta_log/" in k for k in tables) and any(k.startswith("warehouse/quarantine/") for k in tables)
    seen |= {f"s3://{bucket}/{key}": text for key, text in tables.items()}

    leaks = {where: probe for where, text in seen.items() for probe in (secret, key_id) if probe in text}
    assert not leaks, f"the credentials appear in: {sorted(leaks)}"
