"""The local sibling of an ``http_api`` source: the shop's orders and shipments served over HTTP on a loopback port.

A threaded stdlib HTTP server holds records per resource (the simulator's orders,
:func:`shop_orders`, its shipments, :mod:`lakehouse.dev.shop_shipments`, or any a test
publishes) and answers ``GET /<resource>`` (``/orders``, ``/shipments``; another is 404)
with one page of them, in the order of (``updated_at``, arrival), as
``{"data": [...], "next_cursor": ...}``:

- ``limit`` records a page (default 100), by ``cursor`` (an opaque keyset cursor from the
  previous page's ``next_cursor``, null after the last page), ``page`` (from 1) or
  ``offset`` (from 0);
- ``updated_since``: only records whose ``updated_at`` is at or after it (inclusive);
- a required token: ``Authorization: Bearer <token>``, or ``X-API-Key: <token>``, or the
  query parameter ``api_key``; anything else is answered 401.

Switches for the failures a client must survive: :meth:`ShopApi.fail` answers the next
requests with a status (429 with a ``Retry-After``, 500, 401 …), :meth:`ShopApi.slow`
answers them only after a delay. ``python -m lakehouse.dev.shop_api`` serves four
windows of the simulator's orders and shipments until interrupted.
"""

from __future__ import annotations

import base64
import json
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from lakehouse.dev.shop_shipments import shipments
from lakehouse.dev.simulator import simulate
from lakehouse.storage import LocalStore


def shop_orders(windows: int, *, start: datetime, interval: timedelta = timedelta(minutes=15), seed: int = 7,
                orders_per_window: int = 5) -> list[list[dict[str, Any]]]:
    """Each window's order records as the simulator lands them (its malformed lines left out).

    New orders, later versions of earlier ones, an out-of-order old version, a tie, a
    record twice in a file and a whole file delivered twice: the records of
    ``orders/…/part-*.jsonl`` of each window, in landing order.
    """
    with tempfile.TemporaryDirectory(prefix="shop-api-") as folder:
        store = LocalStore(Path(folder))
        done = simulate(store, start=start, windows=windows, interval=interval, seed=seed,
                        orders_per_window=orders_per_window)
        out = []
        for window in done:
            records = []
            for key in (k for k in window.keys if k.startswith("orders/")):
                for line in store.get(key).decode().splitlines():
                    try:
                        record = json.loads(line)
                    except ValueError:
                        continue  # the simulator's truncated line: an API sends JSON
                    records.append(record)
            out.append(records)
        return out


def _time(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


@dataclass
class _Fault:
    status: int | None
    delay: float
    retry_after: str | None
    times: int | None
    """How many requests it answers (null: every one, until :meth:`ShopApi.clear`)."""
    after: int = 0
    """How many requests it lets through first."""


class ShopApi:
    """The server: publish records, switch failures on, read its request log (see the module)."""

    def __init__(self, *, token: str, host: str = "127.0.0.1", port: int = 0, default_limit: int = 100,
                 resources: Iterable[str] = ("orders", "shipments")) -> None:
        self.token = token
        self.default_limit = default_limit
        self._records: dict[str, list[tuple[datetime, int, dict[str, Any]]]] = {r.strip("/"): [] for r in resources}
        """Each resource's records (``publish`` adds one): its (updated_at, arrival, record) in serving order."""
        self._arrived = 0
        self._faults: list[_Fault] = []
        self._lock = threading.Lock()
        self.requests: list[str] = []
        """The path and query of every request received, in order."""
        self.answers: list[int] = []
        """The status of every answer sent, in order."""
        api = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (the stdlib's name)
                api._handle(self)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass  # quiet: the request log is ``requests``

        self.server = ThreadingHTTPServer((host, port), Handler)
        self.server.daemon_threads = True
        self._thread = threading.Thread(target=self.server.serve_forever, name="shop-api", daemon=True)

    @property
    def url(self) -> str:
        """The server's base URL (``http://127.0.0.1:<port>``)."""
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> ShopApi:
        """Serve in a thread of this process."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> ShopApi:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- what it serves ---------------------------------------------------------------------

    def publish(self, records: Iterable[dict[str, Any]], *, resource: str = "orders") -> None:
        """Add records to ``resource`` (each needs an ``updated_at``); a later one sorts after an earlier one of the same time."""
        with self._lock:
            held = self._records.setdefault(resource.strip("/"), [])
            for record in records:
                held.append((_time(record["updated_at"]), self._arrived, dict(record)))
                self._arrived += 1
            held.sort(key=lambda r: (r[0], r[1]))

    @property
    def published(self) -> list[dict[str, Any]]:
        """Every record of ``orders``, in the order it is served."""
        return self.published_of("orders")

    def published_of(self, resource: str) -> list[dict[str, Any]]:
        """Every record of ``resource``, in the order it is served."""
        with self._lock:
            return [r for _, _, r in self._records.get(resource.strip("/"), [])]

    def fail(self, status: int, *, times: int | None = 1, retry_after: str | None = None, after: int = 0) -> None:
        """Answer ``times`` requests (null: all) with ``status`` (and ``Retry-After``), ``after`` others first.

        Failures queue: each starts once the one before it is done.
        """
        with self._lock:
            self._faults.append(_Fault(status, 0.0, retry_after, times, after))

    def slow(self, seconds: float, *, times: int | None = 1, after: int = 0) -> None:
        """Answer ``times`` requests only after ``seconds``, ``after`` others first (queued like :meth:`fail`)."""
        with self._lock:
            self._faults.append(_Fault(None, seconds, None, times, after))

    def clear(self) -> None:
        """Switch every failure off."""
        with self._lock:
            self._faults.clear()

    @contextmanager
    def failing(self, status: int, *, retry_after: str | None = None) -> Iterator[None]:
        """Answer every request with ``status`` inside the block."""
        self.fail(status, times=None, retry_after=retry_after)
        try:
            yield
        finally:
            self.clear()

    # --- answering --------------------------------------------------------------------------

    def _fault(self) -> _Fault | None:
        with self._lock:
            if not self._faults:
                return None
            fault = self._faults[0]
            if fault.after > 0:
                fault.after -= 1
                return None
            if fault.times is not None:
                fault.times -= 1
                if fault.times <= 0:
                    self._faults.pop(0)
            return fault

    def _authorised(self, handler: BaseHTTPRequestHandler, query: dict[str, list[str]]) -> bool:
        return self.token in (
            handler.headers.get("Authorization", "").removeprefix("Bearer "),
            handler.headers.get("X-API-Key", ""),
            (query.get("api_key") or [""])[0],
        )

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(handler.path)
        query = parse_qs(parts.query)
        with self._lock:
            self.requests.append(handler.path)
        fault = self._fault()
        if fault is not None and fault.delay:
            time.sleep(fault.delay)
        if fault is not None and fault.status is not None:
            headers = {"Retry-After": fault.retry_after} if fault.retry_after is not None else {}
            return self._send(handler, fault.status, {"error": f"switched to answer {fault.status}"}, headers)
        if not self._authorised(handler, query):
            return self._send(handler, 401, {"error": "a valid token is required"}, {"WWW-Authenticate": "Bearer"})
        resource = parts.path.strip("/")
        with self._lock:
            served = sorted(self._records)
        if resource not in served:
            return self._send(handler, 404, {"error": f"no resource {resource!r} (resources: {', '.join(served)})"}, {})
        try:
            body = self._page(resource, query)
        except ValueError as exc:
            return self._send(handler, 400, {"error": str(exc)}, {})
        return self._send(handler, 200, body, {})

    def _page(self, resource: str, query: dict[str, list[str]]) -> dict[str, Any]:
        def one(name: str) -> str | None:
            values = query.get(name)
            return values[0] if values else None

        limit = int(one("limit") or self.default_limit)
        since = one("updated_since")
        with self._lock:
            rows = [r for r in self._records[resource] if since is None or r[0] >= _time(since)]
        if (cursor := one("cursor")) is not None:
            at, seq = json.loads(base64.urlsafe_b64decode(cursor.encode()))
            rows = [r for r in rows if (r[0], r[1]) > (_time(at), seq)]
            chosen = rows[:limit]
        elif (page := one("page")) is not None:
            chosen = rows[(int(page) - 1) * limit:int(page) * limit]
        else:
            offset = int(one("offset") or 0)
            chosen = rows[offset:offset + limit]
        following = None
        if chosen and len(rows) > len(chosen) and one("page") is None and one("offset") is None:
            last = chosen[-1]
            following = base64.urlsafe_b64encode(json.dumps([last[0].isoformat(), last[1]]).encode()).decode()
        return {"data": [r[2] for r in chosen], "next_cursor": following}

    def _send(self, handler: BaseHTTPRequestHandler, status: int, body: dict[str, Any], headers: dict[str, str]) -> None:
        data = json.dumps(body).encode()
        with self._lock:
            self.answers.append(status)
        try:
            handler.send_response(status)
            handler.send_header("Content-Type", "application/json")
            handler.send_header("Content-Length", str(len(data)))
            for name, value in headers.items():
                handler.send_header(name, value)
            handler.end_headers()
            handler.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up waiting (a slow answer): nothing to tell it


def main() -> None:
    """Serve four windows of the simulator's orders and shipments on ``--port`` with the token of ``$SHOP_API_TOKEN``."""
    import argparse
    import os

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--windows", type=int, default=4)
    args = parser.parse_args()
    token = os.environ.get("SHOP_API_TOKEN")
    if not token:
        parser.error("set SHOP_API_TOKEN: the token clients must send")
    api = ShopApi(token=token, port=args.port)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    for records in shop_orders(args.windows, start=start):
        api.publish(records)
    for k in range(args.windows):
        api.publish(shipments(start + k * timedelta(minutes=15)), resource="shipments")
    print(f"serving {len(api.published)} order records at {api.url}/orders and "  # noqa: T201 (a command's output)
          f"{len(api.published_of('shipments'))} shipment records at {api.url}/shipments")
    api.start()
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        api.stop()


if __name__ == "__main__":
    main()
