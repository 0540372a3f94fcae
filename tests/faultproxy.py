"""A loopback proxy in front of moto that answers chosen requests with an S3 error first.

``python -m tests.faultproxy UPSTREAM PATTERN N STATUS CODE``: the first ``N`` requests
whose method, path and query (``GET /bucket?list-type=2&prefix=...``) contain ``PATTERN``
get ``STATUS`` with the S3 error ``CODE`` (``503 SlowDown``); everything else, and every
later request, is forwarded unchanged. Its own process, like moto's (STACK.md).
"""

from __future__ import annotations

import http.client
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit

_HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "te", "trailer", "expect"}


def serve(upstream: str, pattern: str, count: int, status: int, code: str) -> ThreadingHTTPServer:
    target = urlsplit(upstream)
    host, port = target.hostname or "127.0.0.1", target.port or 80
    left = [count]
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def _forward(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else None
            with lock:
                fault = pattern in unquote(f"{self.command} {self.path}") and left[0] > 0
                left[0] -= fault
            if fault:
                data = f"<?xml version='1.0' encoding='UTF-8'?><Error><Code>{code}</Code><Message>injected</Message></Error>".encode()
            else:
                conn = getattr(self, "_upstream", None)
                if conn is None:  # one upstream connection per client connection, kept alive
                    conn = self._upstream = http.client.HTTPConnection(host, port, timeout=120)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP}
                try:
                    conn.request(self.command, self.path, body=body, headers=headers)
                    resp = conn.getresponse()
                    data = resp.read()
                except (OSError, http.client.HTTPException):
                    conn.close()
                    self._upstream = None
                    raise
            self.send_response(status if fault else resp.status)
            if not fault:
                for k, v in resp.getheaders():
                    if k.lower() not in _HOP and k.lower() != "content-length":
                        self.send_header(k, v)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)

        do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _forward

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


class FaultProxy:
    """:func:`serve` in a process of its own; ``endpoint_url`` is where clients connect."""

    def __init__(self, upstream: str, pattern: str, count: int, status: int = 503, code: str = "SlowDown") -> None:
        self._process = subprocess.Popen(
            [sys.executable, "-m", "tests.faultproxy", upstream, pattern, str(count), str(status), code],
            stdout=subprocess.PIPE, text=True,
        )
        assert self._process.stdout is not None
        self.endpoint_url = self._process.stdout.readline().strip()
        if not self.endpoint_url.startswith("http://"):
            raise RuntimeError("the fault proxy did not start")

    def stop(self) -> None:
        self._process.terminate()
        self._process.wait(timeout=10)


if __name__ == "__main__":
    running = serve(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5])
    print(f"http://127.0.0.1:{running.server_address[1]}", flush=True)
    while True:
        time.sleep(3600)
