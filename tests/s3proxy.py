"""A loopback HTTP proxy in front of the moto server that counts what clients read.

Point ``AWS_ENDPOINT_URL`` at :attr:`ProxyProcess.endpoint_url` and every S3 request of
delta-rs, DuckDB and boto3 passes through it: each GET is tallied by the kind of object
(a Delta data file, a log entry, a landing file) with the bytes sent back, so a test can
compare what two windows read.

It runs as its own process (``python -m tests.s3proxy UPSTREAM``), for the reason moto
does (STACK.md): some delta-rs calls hold the GIL while they wait for the network, so a
server thread in the same process never answers them. ``GET /__tally`` returns the tally
as JSON and starts a fresh one.
"""

from __future__ import annotations

import http.client
import json
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit

_HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "te", "trailer", "expect"}


@dataclass
class Tally:
    """GET requests and bytes, by kind of object."""

    requests: Counter[str] = field(default_factory=Counter)
    bytes: Counter[str] = field(default_factory=Counter)
    data_files: set[str] = field(default_factory=set)


def kind(path: str) -> str:
    """``data`` (a Parquet data file of a table), ``log``, ``landing`` or ``other``."""
    if "/_delta_log/" in path:
        return "log"
    if path.endswith(".parquet") and "/landing/" not in path:
        return "data"
    if "/landing/" in path:
        return "landing"
    return "other"


class CountingProxy:
    """Forwards every request to ``upstream`` and tallies the GETs; a context manager."""

    def __init__(self, upstream: str) -> None:
        target = urlsplit(upstream)
        self._host, self._port = target.hostname or "127.0.0.1", target.port or 80
        self.tally = Tally()
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:  # quiet
                pass

            def _forward(self) -> None:
                if self.path == "/__tally":
                    self._reply_tally()
                    return
                body = self._body()
                headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP}
                if body is not None:
                    headers = {k: v for k, v in headers.items() if k.lower() != "content-length"}
                    headers["Content-Length"] = str(len(body))
                conn = getattr(self, "_upstream", None)
                if conn is None:  # one upstream connection per client connection, kept alive
                    conn = self._upstream = http.client.HTTPConnection(proxy._host, proxy._port, timeout=120)
                try:
                    conn.request(self.command, self.path, body=body, headers=headers)
                    resp = conn.getresponse()
                    data = resp.read()
                except (OSError, http.client.HTTPException):
                    conn.close()
                    self._upstream = None
                    raise
                if self.command == "GET":
                    path = unquote(urlsplit(self.path).path)
                    what = kind(path)
                    with proxy._lock:
                        proxy.tally.requests[what] += 1
                        proxy.tally.bytes[what] += len(data)
                        if what == "data":
                            proxy.tally.data_files.add(path)
                self.send_response(resp.status, resp.reason)
                for k, v in resp.getheaders():
                    if k.lower() not in _HOP and (k.lower() != "content-length" or self.command == "HEAD"):
                        self.send_header(k, v)
                if self.command != "HEAD":
                    self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            def _reply_tally(self) -> None:
                done = proxy.reset()
                data = json.dumps(
                    {"requests": done.requests, "bytes": done.bytes, "data_files": sorted(done.data_files)}
                ).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _body(self) -> bytes | None:
                if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
                    parts = []
                    while True:
                        size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                        if size == 0:
                            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                                pass  # trailers
                            return b"".join(parts)
                        parts.append(self.rfile.read(size))
                        self.rfile.readline()
                length = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(length) if length else None

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _forward

        class Server(ThreadingHTTPServer):
            request_queue_size = 256  # delta-rs opens many connections at once
            daemon_threads = True

        self._server = Server(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def reset(self) -> Tally:
        """The tally so far, and a fresh one from now on."""
        with self._lock:
            done, self.tally = self.tally, Tally()
        return done

    def __enter__(self) -> CountingProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


class ProxyProcess:
    """A :class:`CountingProxy` in a process of its own, in front of ``upstream``."""

    def __init__(self, upstream: str) -> None:
        self._process = subprocess.Popen(
            [sys.executable, "-m", "tests.s3proxy", upstream], stdout=subprocess.PIPE, text=True
        )
        assert self._process.stdout is not None
        self.endpoint_url = self._process.stdout.readline().strip()
        deadline = time.monotonic() + 20
        while not self.endpoint_url.startswith("http://"):
            if time.monotonic() > deadline or self._process.poll() is not None:
                raise RuntimeError("the S3 proxy did not start")
            self.endpoint_url = self._process.stdout.readline().strip()

    def tally(self) -> Tally:
        """What was read since the last call (and start a fresh tally)."""
        with urllib.request.urlopen(f"{self.endpoint_url}/__tally", timeout=30) as resp:
            data = json.loads(resp.read())
        return Tally(Counter(data["requests"]), Counter(data["bytes"]), set(data["data_files"]))

    def stop(self) -> None:
        self._process.terminate()
        self._process.wait(timeout=10)


if __name__ == "__main__":
    with CountingProxy(sys.argv[1]) as running:
        print(running.endpoint_url, flush=True)
        while True:
            time.sleep(3600)
