"""delta-rs reports some object-store failures as ``DeltaError``, not ``OSError`` (a write
or a change-data read whose S3 listing came back cut short), and DuckDB's ``delta_scan``
(gold) as ``duckdb.IOException``. They are transient (a retry cures them); found by the
soak (``python -m bench.soak``), where such windows failed for good instead of being
retried. Real delta-rs and DuckDB calls through the fault proxy in front of moto."""

from __future__ import annotations

from collections.abc import Iterator

import pyarrow as pa
import pytest
from deltalake import DeltaTable, write_deltalake

from lakehouse.dev.moto_server import ACCESS_KEY, REGION, SECRET_KEY, MotoServer
from lakehouse.dev.s3proxy import ProxyProcess
from lakehouse.errors import is_transient


@pytest.fixture
def proxy(moto: MotoServer) -> Iterator[ProxyProcess]:
    running = ProxyProcess(moto.endpoint_url)
    yield running
    running.stop()


def test_a_delta_write_or_cdf_read_whose_listing_is_cut_short_is_transient(moto: MotoServer, proxy: ProxyProcess) -> None:
    moto.create_bucket("delta-store-errors")
    opts = {"AWS_ENDPOINT_URL": proxy.endpoint_url, "AWS_ALLOW_HTTP": "true", "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY, "AWS_REGION": REGION}
    uri = "s3://delta-store-errors/t"
    write_deltalake(uri, pa.table({"a": [1]}), storage_options=opts, configuration={"delta.enableChangeDataFeed": "true"})
    table = DeltaTable(uri, storage_options=opts)
    calls = {
        "append": lambda: write_deltalake(table, pa.table({"a": [2]}), mode="append"),
        "load_cdf": lambda: table.load_cdf(starting_version=0).read_all(),
    }
    for name, call in calls.items():
        proxy.fail_first("list-type=2", 30, code="truncated")
        with pytest.raises(Exception) as caught:
            call()
        proxy.set_faults(0)
        assert type(caught.value).__name__ == "DeltaError", (name, caught.value)
        assert is_transient(caught.value), (name, str(caught.value)[:200])
    # a DeltaError about the data is still not retried
    with pytest.raises(Exception) as caught:
        write_deltalake(table, pa.table({"b": ["x"]}), mode="append")
    assert not is_transient(caught.value), caught.value


def test_a_duckdb_delta_scan_whose_listing_is_cut_short_is_transient(moto: MotoServer, proxy: ProxyProcess) -> None:
    from lakehouse.config import Settings
    from lakehouse.duck import open_database
    from lakehouse.storage import storage_options

    moto.create_bucket("duck-store-errors")
    settings = Settings(warehouse="s3://duck-store-errors/w", aws_endpoint_url=proxy.endpoint_url,  # type: ignore[call-arg]
                        aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY, aws_region=REGION)
    uri = settings.table_uri("silver", "t")
    write_deltalake(uri, pa.table({"a": [1]}), storage_options=storage_options(settings))
    con = open_database(settings, confine=False)
    try:
        assert con.execute(f"SELECT count(*) FROM delta_scan('{uri}')").fetchone() == (1,)
        proxy.fail_first("list-type=2", 30, code="truncated")
        with pytest.raises(Exception) as caught:
            con.execute(f"SELECT count(*) FROM delta_scan('{uri}')").fetchall()
        proxy.set_faults(0)
    finally:
        con.close()
    assert type(caught.value).__name__ == "IOException", caught.value
    assert is_transient(caught.value), str(caught.value)[:200]
