"""The Kinesis source as declared: its fields, the precise errors of a malformed one, its cursor.

What it reads from a stream is tested against moto (tests/integration/test_kinesis_source.py).
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from lakehouse.config import Settings
from lakehouse.declaration import parse
from lakehouse.errors import ConfigError
from lakehouse.sources.base import open_source
from lakehouse.sources.declared import KinesisDecl
from lakehouse.sources.kinesis import KinesisSource, ShardCursor, sortable

YAML = """
pipelines:
  stock:
    sources:
      inventory: {SOURCE}
    datasets:
      inventory_events:
        source: inventory
        columns: {event_id: string, quantity: int64}
        key: event_id
"""
FULL = ("{kind: kinesis, stream: shop-inventory, region: eu-west-1, endpoint_url: 'https://kinesis.eu-west-1.amazonaws.com',"
        " start_at: latest, max_attempts: 8, timeout: 5, max_batch_records: 500, max_batch_bytes: 1048576,"
        " interval: 5m, max_batch_rows: 10000}")


def source(text: str) -> str:
    return YAML.replace("{SOURCE}", text)


def test_every_field_of_a_kinesis_source_is_declared_in_yaml() -> None:
    dataset = parse(source(FULL)).pipeline("stock").dataset("inventory_events")
    decl = dataset.connection
    assert isinstance(decl, KinesisDecl)
    assert (dataset.kind, decl.stream, decl.region, decl.endpoint_url, decl.start_at) == (
        "kinesis", "shop-inventory", "eu-west-1", "https://kinesis.eu-west-1.amazonaws.com", "latest")
    assert (decl.max_attempts, decl.timeout, decl.max_batch_records, decl.max_batch_bytes) == (8, 5.0, 500, 1048576)
    defaults = parse(source("{kind: kinesis}")).pipeline("stock").dataset("inventory_events").connection
    assert (defaults.stream, defaults.region, defaults.start_at, defaults.max_attempts) == (None, None, "trim_horizon", 5)


def test_a_malformed_kinesis_source_is_refused_field_by_field() -> None:
    bad = ("{kind: kinesis, stream: 'shop inventory!', region: Europe, start_at: earliest, endpoint_url: 'ftp://x',"
           " max_attempts: 0, prefix: inventory}")
    with pytest.raises(ConfigError) as refused:
        parse(source(bad))
    where = "pipelines.stock.sources.inventory"
    for problem in (
        f"{where}.stream: 'shop inventory!' is not a Kinesis stream name: 1-128 letters, digits, '_', '-' or '.'",
        f"{where}.region: 'Europe' is not an AWS region name (like eu-west-1 or us-east-1)",
        f"{where}.start_at: Input should be 'trim_horizon' or 'latest'",
        f"{where}.endpoint_url: 'ftp://x': expected an http:// or https:// URL with a host, no path and no credentials",
        f"{where}.max_attempts: Input should be greater than or equal to 1",
        f"{where}.prefix: unknown field",  # a landing-files option on a stream
    ):
        assert problem in str(refused.value)


def test_an_endpoint_with_credentials_in_it_is_refused_without_showing_them() -> None:
    with pytest.raises(ConfigError) as refused:
        parse(source("{kind: kinesis, endpoint_url: 'https://AKIA1234:s3cr3t@kinesis.example.com'}"))
    assert "endpoint_url: 'https://***@kinesis.example.com': expected" in str(refused.value)
    assert "s3cr3t" not in str(refused.value) and "AKIA1234" not in str(refused.value)


def test_a_dataset_names_its_stream_in_one_place(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    by_resource = parse(source("{kind: kinesis, region: us-east-1}").replace(
        "source: inventory", "source: inventory\n        resource: shop-inventory")).pipeline("stock").dataset("inventory_events")
    opened = open_source(by_resource, Settings())
    assert isinstance(opened, KinesisSource)
    assert (opened.stream, opened.describe()) == ("shop-inventory", "kinesis:us-east-1/shop-inventory")
    opened.close()
    with pytest.raises(ConfigError, match=r"pipelines.stock.datasets.inventory_events.resource: 'shop-inventory' and its "
                                          r"source's stream 'other' disagree: name the stream in one place"):
        parse(source("{kind: kinesis, stream: other}").replace(
            "source: inventory", "source: inventory\n        resource: shop-inventory"))  # found by validate, not at run time
    with pytest.raises(ConfigError, match="plain http to a host that is not loopback"):
        open_source(parse(source("{kind: kinesis, endpoint_url: 'http://kinesis.example.com'}")).pipeline("stock")
                    .dataset("inventory_events"), Settings())


def test_sequence_numbers_sort_as_numbers_in_their_stored_form() -> None:
    rng = random.Random(3)
    numbers = [rng.randrange(10 ** rng.randint(1, 60)) for _ in range(500)] + [0, 9, 10, 10**56 - 1, 10**56, 10**128]
    assert sorted(numbers, key=lambda n: sortable(str(n))) == sorted(numbers)
    assert sortable("49590338271490256608559692538361571095921575989136588898") == (
        "49590338271490256608559692538361571095921575989136588898")  # AWS's 56 digits: as written


def test_the_cursor_is_json_and_back() -> None:
    cursor = ShardCursor({"shardId-000000000002": "17", "shardId-000000000001": "4"},
                         frozenset({"shardId-000000000000"}), "2026-01-01T00:00:00+00:00")
    data = cursor.to_json()
    assert data == {"shards": {"shardId-000000000001": "4", "shardId-000000000002": "17"},
                    "finished": ["shardId-000000000000"], "since": "2026-01-01T00:00:00+00:00"}
    assert KinesisSource(None, stream="s", region="us-east-1").cursor_from(data) == cursor  # pyright: ignore[reportArgumentType]



STOCK = """
pipelines:
  stock:
    sources:
      inventory: THE_SOURCE
      by_dataset: {kind: kinesis}
    datasets:
      inventory_events:
        source: inventory
        columns: {event_id: string, quantity: int64}
        key: event_id
      other_events:
        source: by_dataset
        resource: THE_STREAM
        columns: {event_id: string}
        key: event_id
"""


def test_lakehouse_validate_explains_a_malformed_kinesis_declaration_line_by_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from flows.cli import app

    bad = tmp_path / "stock.yaml"
    # `--config` sets LAKEHOUSE_CONFIG in this process (for the flow): restored after the test, so later tests load theirs
    monkeypatch.setenv("LAKEHOUSE_CONFIG", str(bad))
    bad.write_text(STOCK.replace("THE_SOURCE", "{kind: kinesis, stream: '', start_at: earliest, max_batch_records: -5, "
                                           "max_batch_bytes: 0, timeout: 0}").replace("THE_STREAM", "other-events"))
    out = CliRunner().invoke(app, ["validate", "--config", str(bad)])
    assert out.exit_code == 2, out.output
    where = f"{bad}: pipelines.stock.sources.inventory"
    lines = [line.strip() for line in out.stderr.splitlines()]
    for problem in (
        f"{where}.stream: '' is not a Kinesis stream name: 1-128 letters, digits, '_', '-' or '.'",  # stream: ${SHOP_STREAM} empty
        f"{where}.start_at: Input should be 'trim_horizon' or 'latest'",
        f"{where}.max_batch_records: Input should be greater than or equal to 1",
        f"{where}.max_batch_bytes: Input should be greater than or equal to 1",
        f"{where}.timeout: Input should be greater than 0",
    ):
        assert problem in lines, (problem, out.stderr)

    # the source is right, a dataset's stream is not: reported at the dataset by validate, not when a run opens it
    bad.write_text(STOCK.replace("THE_SOURCE", "{kind: kinesis}").replace("THE_STREAM", "'other events'"))
    out = CliRunner().invoke(app, ["validate", "--config", str(bad)])
    assert out.exit_code == 2, out.output
    assert [line.strip() for line in out.stderr.splitlines()][1:] == [
        f"{bad}: pipelines.stock.datasets.other_events.resource: 'other events' is not a Kinesis stream name: "
        "1-128 letters, digits, '_', '-' or '.'"], out.stderr
