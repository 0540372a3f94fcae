"""The fault proxy of the test suite and the soak (``lakehouse/dev/s3proxy.py``)."""

from __future__ import annotations

import socket
import struct
import threading
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from lakehouse.dev.s3proxy import CountingProxy

BODY = b"x" * (8 << 20)  # larger than the socket buffers, so the proxy is still writing when the client leaves


class _Upstream(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", str(len(BODY)))
        self.end_headers()
        self.wfile.write(BODY)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def proxy() -> Iterator[CountingProxy]:
    upstream = ThreadingHTTPServer(("127.0.0.1", 0), _Upstream)
    threading.Thread(target=upstream.serve_forever, daemon=True).start()
    try:
        with CountingProxy(f"http://127.0.0.1:{upstream.server_address[1]}") as running:
            yield running
    finally:
        upstream.shutdown()
        upstream.server_close()


def _leave_mid_answer(endpoint: str) -> None:
    """GET a large object and close the connection (with a reset) before reading the answer."""
    host, port = endpoint.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(b"GET /bucket/big.parquet HTTP/1.1\r\nHost: s3\r\n\r\n")
        sock.recv(64)  # the answer has begun
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


def test_a_client_that_gives_up_mid_answer_prints_no_traceback_and_the_proxy_serves_on(
    proxy: CountingProxy, capfd: pytest.CaptureFixture[str]
) -> None:
    # a client's read timeout (a "slow" fault) or a retry closes its connection while the
    # proxy still writes: the soak printed a traceback for each (hundreds in a minute)
    for _ in range(3):
        _leave_mid_answer(proxy.endpoint_url)
    with urllib.request.urlopen(f"{proxy.endpoint_url}/bucket/big.parquet", timeout=30) as resp:
        assert resp.read() == BODY
    assert proxy.reset().requests["data"] == 4  # every GET reached upstream and was tallied
    err = capfd.readouterr().err
    assert "Traceback" not in err, err[:2000]
