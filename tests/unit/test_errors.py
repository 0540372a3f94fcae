"""Which failures a retry can cure, shown on real exceptions from the libraries that raise them."""

from __future__ import annotations

import socket
import zlib
from pathlib import Path

import boto3
import pyarrow as pa
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from deltalake import DeltaTable, write_deltalake

from lakehouse.errors import (
    CommitConflict,
    ConfigError,
    GateFailed,
    LakehouseError,
    SourceUnavailable,
    StorageMissing,
    is_transient,
    reported,
    strip_ansi,
)

# the shape delta-rs gives a missing bucket (colour codes included), as seen against moto
DELTA_NO_BUCKET = (
    "Kernel error -> Generic S3 error\n          \x1b[31m↳\x1b[0m Error performing list request\n"
    "           \x1b[31m↳\x1b[0m 404 Not Found\n             \x1b[31m↳\x1b[0m <?xml version=\"1.0\"?>"
    "<Error><Code>NoSuchBucket</Code><Message>The specified bucket does not exist</Message>"
    "<BucketName>lake-x</BucketName></Error>"
)
DELTA_RESET = "Generic S3 error: \x1b[31m↳\x1b[0m error sending request \x1b[31m↳\x1b[0m connection reset by peer (os error 104)"


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_real_endpoint_connection_error_is_transient() -> None:
    client = boto3.client(
        "s3", endpoint_url=f"http://127.0.0.1:{_closed_port()}", region_name="us-east-1",
        aws_access_key_id="k", aws_secret_access_key="s", config=Config(retries={"total_max_attempts": 1}),
    )
    with pytest.raises(Exception) as caught:
        client.list_objects_v2(Bucket="b")
    assert type(caught.value).__name__ == "EndpointConnectionError"
    assert is_transient(caught.value)


def test_a_real_body_cut_short_is_transient() -> None:
    # an S3 server that promises 100 bytes and sends 10: botocore's ResponseStreamingError
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    class Short(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            self.send_response(200)
            self.send_header("Content-Length", "100")
            self.end_headers()
            self.wfile.write(b"0123456789")

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Short)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        client = boto3.client(
            "s3", endpoint_url=f"http://127.0.0.1:{server.server_address[1]}", region_name="us-east-1",
            aws_access_key_id="k", aws_secret_access_key="s", config=Config(retries={"total_max_attempts": 1}),
        )
        with pytest.raises(Exception) as caught:
            client.get_object(Bucket="b", Key="k")["Body"].read()
    finally:
        server.shutdown()
        server.server_close()
    assert type(caught.value).__name__ == "ResponseStreamingError"
    assert is_transient(caught.value)


def test_a_real_delta_commit_conflict_is_transient(tmp_path: Path) -> None:
    write_deltalake(str(tmp_path), pa.table({"a": [1, 2, 3]}))
    stale, other = DeltaTable(str(tmp_path)), DeltaTable(str(tmp_path))
    other.delete("a = 1")
    with pytest.raises(Exception) as caught:
        stale.delete("a = 1")
    assert type(caught.value).__name__ == "CommitFailedError"
    assert is_transient(caught.value) and is_transient(CommitConflict("x"))


@pytest.mark.parametrize(("code", "status", "transient"), [
    ("SlowDown", 503, True), ("ServiceUnavailable", 503, True), ("InternalError", 500, True),
    ("NoSuchBucket", 404, False), ("AccessDenied", 403, False), ("NoSuchKey", 404, False),
])
def test_s3_answers_5xx_and_slowdown_are_transient_4xx_are_not(code: str, status: int, transient: bool) -> None:
    error = ClientError({"Error": {"Code": code, "Message": "m"}, "ResponseMetadata": {"HTTPStatusCode": status}}, "GetObject")
    assert is_transient(error) is transient


def test_what_is_never_retried() -> None:
    for exc in (TypeError("x"), KeyError("x"), ValueError("x"), AssertionError(), zlib.error("x"),
                GateFailed("blocked", table="t", failed_checks=[]), ConfigError("bad"), StorageMissing("gone"),
                PermissionError("no"), LakehouseError("rows do not add up"), OSError(DELTA_NO_BUCKET)):
        assert not is_transient(exc), exc
    assert is_transient(OSError(DELTA_RESET)) and is_transient(TimeoutError()) and is_transient(ConnectionResetError())
    assert is_transient(SourceUnavailable("cannot list"))  # a source that is down: retried


def test_a_missing_bucket_is_reported_in_one_line_naming_it() -> None:
    error = reported(OSError(DELTA_NO_BUCKET), roots=("s3://lake-x/warehouse", "s3://other/landing"))
    assert isinstance(error, StorageMissing)
    assert str(error).startswith("bucket 'lake-x' does not exist (s3://lake-x/warehouse): ")
    wrapped = SourceUnavailable("cannot list")
    wrapped.__cause__ = ClientError({"Error": {"Code": "NoSuchBucket", "BucketName": "lake-y"}}, "ListObjectsV2")
    assert isinstance(reported(wrapped), StorageMissing) and not is_transient(wrapped)


def test_messages_we_raise_or_report_carry_no_colour_codes() -> None:
    assert "\x1b" not in str(CommitConflict(f"s3://b/t: {DELTA_RESET}"))
    transient = reported(OSError(DELTA_RESET))
    assert isinstance(transient, SourceUnavailable) and "\x1b" not in str(transient) and "\n" not in str(transient)
    assert strip_ansi("\x1b[31m↳\x1b[0m x") == "↳ x"
    bug = TypeError("plain")
    assert reported(bug) is bug  # a bug keeps its type and traceback


def test_a_listing_that_failed_on_a_4xx_answer_is_not_retried() -> None:
    denied = SourceUnavailable("cannot list s3://b/landing/orders")
    denied.__cause__ = ClientError({"Error": {"Code": "AccessDenied"}, "ResponseMetadata": {"HTTPStatusCode": 403}}, "ListObjectsV2")
    slow = SourceUnavailable("cannot list s3://b/landing/orders")
    slow.__cause__ = ClientError({"Error": {"Code": "SlowDown"}, "ResponseMetadata": {"HTTPStatusCode": 503}}, "ListObjectsV2")
    assert not is_transient(denied) and is_transient(slow)
