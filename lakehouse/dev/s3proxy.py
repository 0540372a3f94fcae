"""A loopback HTTP proxy in front of the moto server that counts what clients read.

Point ``AWS_ENDPOINT_URL`` at :attr:`ProxyProcess.endpoint_url` and every S3 request of
delta-rs, DuckDB and boto3 passes through it: each GET is tallied by the kind of object
(a Delta data file, a log entry, a landing file) with the bytes sent back, so a test can
compare what two windows read.

It can also be flaky storage: ``POST /__faults?rate=0.1&lost_ack=0.3&seed=7`` makes that
share of requests fail the way object storage does (500, 503 SlowDown, a connection reset
before any answer, a slow answer, a body cut short) and loses the acknowledgement of that
share of commit PUTs (``_delta_log/`` entries): the object is written, the client sees a
500. ``rate=0`` turns it off. ``POST /__faults?pattern=P&count=N&status=503&code=SlowDown``
instead answers the first ``N`` requests whose method, path and query (``GET
/bucket?list-type=2&prefix=...``) contain ``P`` with that S3 error (``code=truncated``: their
bodies are cut short), and forwards the rest.
Each injected fault is counted in the tally.

It runs as its own process (``python -m lakehouse.dev.s3proxy UPSTREAM``), for the reason moto
does (STACK.md): some delta-rs calls hold the GIL while they wait for the network, so a
server thread in the same process never answers them. ``GET /__tally`` returns the tally
as JSON and starts a fresh one.
"""

from __future__ import annotations

import http.client
import json
import random
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlencode, urlsplit

_HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "te", "trailer", "expect"}


@dataclass
class Tally:
    """GET requests and bytes, by kind of object."""

    requests: Counter[str] = field(default_factory=Counter)
    bytes: Counter[str] = field(default_factory=Counter)
    data_files: set[str] = field(default_factory=set)
    faults: Counter[str] = field(default_factory=Counter)
    """Faults injected, by kind (``500``, ``503``, ``reset``, ``slow``, ``truncated``, ``lost_ack``)."""


FAULTS = ("500", "503", "reset", "slow", "truncated")


@dataclass
class Faults:
    """What the proxy injects: a random share of faults and lost acknowledgements, or the first ``count`` matching requests."""

    rate: float = 0.0
    lost_ack: float = 0.0
    random: random.Random = field(default_factory=lambda: random.Random(0))
    kinds: tuple[str, ...] = FAULTS
    pattern: str = ""
    """With ``count``: the first ``count`` requests whose ``METHOD path?query`` contains it fail."""
    count: int = 0
    status: int = 503
    code: str = "SlowDown"


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
        self.faults = Faults()
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                super().setup()
                # headers and body go out in separate writes: without this, Nagle's algorithm
                # meets the client's delayed ACK and every response waits ~40 ms
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def log_message(self, format: str, *args: Any) -> None:  # quiet
                pass

            def _fail(self, status: int, code: str) -> None:
                data = f"<Error><Code>{code}</Code><Message>injected by the test proxy</Message></Error>".encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/xml")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            def _reset(self) -> None:
                self.close_connection = True
                self.connection.shutdown(2)

            def _forward(self) -> None:
                if self.path == "/__tally":
                    self._reply_tally()
                    return
                if self.path.startswith("/__faults"):
                    self._set_faults()
                    return
                body = self._body()
                fault, lost = proxy.draw(self.command, unquote(urlsplit(self.path).path))
                if (target := proxy.targeted(f"{self.command} {unquote(self.path)}")) is not None:
                    if target[1] != "truncated":
                        self._fail(*target)
                        return
                    fault, lost = "truncated", False  # forwarded, and its body cut short
                if fault in ("500", "503", "reset"):
                    if fault == "reset":
                        self._reset()
                    else:
                        self._fail(int(fault), "InternalError" if fault == "500" else "SlowDown")
                    return
                if fault == "slow":
                    time.sleep(proxy.faults.random.uniform(0.05, 0.2))
                headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP}
                if body is not None:
                    headers = {k: v for k, v in headers.items() if k.lower() != "content-length"}
                    headers["Content-Length"] = str(len(body))
                conn = getattr(self, "_upstream", None)
                if conn is None:  # one upstream connection per client connection, kept alive
                    conn = self._upstream = http.client.HTTPConnection(proxy._host, proxy._port, timeout=120)
                try:
                    if conn.sock is None:
                        conn.connect()
                        assert conn.sock is not None  # connect() opened it
                        conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # as above, upstream
                    conn.request(self.command, self.path, body=body, headers=headers)
                    resp = conn.getresponse()
                    data = resp.read()
                except (OSError, http.client.HTTPException):
                    conn.close()
                    self._upstream = None
                    raise
                if lost:  # the write is applied; its acknowledgement is lost
                    self._fail(500, "InternalError")
                    return
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
                    if fault == "truncated" and len(data) > 1:
                        self.wfile.write(data[: len(data) // 2])
                        self._reset()
                        return
                    self.wfile.write(data)

            def _set_faults(self) -> None:
                query = {k: v[0] for k, v in parse_qs(urlsplit(self.path).query).items()}
                with proxy._lock:
                    kinds = tuple(k for k in query.get("kinds", ",".join(FAULTS)).split(",") if k in FAULTS)
                    proxy.faults = Faults(float(query.get("rate", 0)), float(query.get("lost_ack", 0)),
                                          random.Random(int(query.get("seed", 0))), kinds or FAULTS,
                                          query.get("pattern", ""), int(query.get("count", 0)),
                                          int(query.get("status", 503)), query.get("code", "SlowDown"))
                self.send_response(204)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def _reply_tally(self) -> None:
                done = proxy.reset()
                data = json.dumps(
                    {"requests": done.requests, "bytes": done.bytes, "data_files": sorted(done.data_files),
                     "faults": done.faults}
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

            def handle_error(self, request: Any, client_address: Any) -> None:
                # a client that closed its connection mid-answer (its read timeout, a fault it
                # saw, a retry) is what flaky storage looks like, not an error of the proxy
                if isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
                    return
                super().handle_error(request, client_address)

        self._server = Server(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def endpoint_url(self) -> str:
        """The proxy's HTTP endpoint on the loopback interface."""
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def targeted(self, request: str) -> tuple[int, str] | None:
        """(status, code) when ``request`` is one of the first ``count`` matching ``pattern``."""
        with self._lock:
            f = self.faults
            if f.count <= 0 or not f.pattern or f.pattern not in request:
                return None
            f.count -= 1
            self.tally.faults["truncated" if f.code == "truncated" else str(f.status)] += 1
            return f.status, f.code

    def draw(self, method: str, path: str) -> tuple[str | None, bool]:
        """The fault for this request (or None), and whether its acknowledgement is lost."""
        with self._lock:
            f = self.faults
            fault = f.random.choice(f.kinds) if f.rate and f.random.random() < f.rate else None
            if fault == "truncated" and method != "GET":
                fault = None  # only a body sent back can be cut short
            lost = (fault is None and method == "PUT" and "/_delta_log/" in path and not path.endswith(".tmp")
                    and f.lost_ack > 0 and f.random.random() < f.lost_ack)
            if fault:
                self.tally.faults[fault] += 1
            if lost:
                self.tally.faults["lost_ack"] += 1
        return fault, lost

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
            [sys.executable, "-m", "lakehouse.dev.s3proxy", upstream], stdout=subprocess.PIPE, text=True
        )
        assert self._process.stdout is not None
        self.endpoint_url = self._process.stdout.readline().strip()
        deadline = time.monotonic() + 20
        while not self.endpoint_url.startswith("http://"):
            if time.monotonic() > deadline or self._process.poll() is not None:
                msg = "the S3 proxy did not start"
                raise RuntimeError(msg)
            self.endpoint_url = self._process.stdout.readline().strip()

    def tally(self) -> Tally:
        """What was read since the last call (and start a fresh tally)."""
        with urllib.request.urlopen(f"{self.endpoint_url}/__tally", timeout=30) as resp:
            data = json.loads(resp.read())
        return Tally(Counter(data["requests"]), Counter(data["bytes"]), set(data["data_files"]), Counter(data["faults"]))

    def fail_first(self, pattern: str, count: int, status: int = 503, code: str = "SlowDown") -> None:
        """Answer the first ``count`` requests matching ``pattern`` with an S3 error; see the module doc."""
        self.set_faults(0, pattern=pattern, count=count, status=status, code=code)

    def set_faults(
        self, rate: float, *, lost_ack: float = 0.0, seed: int = 0, kinds: tuple[str, ...] = FAULTS,
        pattern: str = "", count: int = 0, status: int = 503, code: str = "SlowDown",
    ) -> None:
        """Make this share of requests fail (0 turns faults off), and the first ``count``
        matching ``pattern``; see the module doc."""
        query = urlencode({"rate": rate, "lost_ack": lost_ack, "seed": seed, "kinds": ",".join(kinds),
                           "pattern": pattern, "count": count, "status": status, "code": code})
        with urllib.request.urlopen(urllib.request.Request(f"{self.endpoint_url}/__faults?{query}", method="POST"), timeout=30):
            pass

    def stop(self) -> None:
        """Stop the proxy process (and wait for it)."""
        self._process.terminate()
        self._process.wait(timeout=10)


if __name__ == "__main__":
    with CountingProxy(sys.argv[1]) as running:
        print(running.endpoint_url, flush=True)
        while True:
            time.sleep(3600)
