"""The shop's inventory events on a Kinesis stream: the local sibling of the Kinesis source.

Window k of a run holds :attr:`ShopStream.per_window` events, each one of ``received``
(stock in, a positive quantity), ``sold`` (negative) or ``adjusted`` (a count correction,
either sign), of one of the simulator's 50 products, with an ``event_id`` (the dataset's
key: ``E-<window>-<n>``), a ``quantity`` delta and an ``event_time`` inside the window. The
events are drawn from a ``random.Random`` seeded with a SHA-256 of ``seed:window`` (never
``hash()``), so a window's events are the same whichever windows a call writes.

Faults, in every window: the first two events are put a second time after the window's
last (a producer that retried a put whose answer it lost); with ``bad=True`` also one
record that is not JSON and one that is not UTF-8 at all, which silver must quarantine
with a reason.

The partition key is the product id, so one product's events are in order on one shard;
:meth:`ShopStream.split_shard` and :meth:`ShopStream.merge_shards` reshard the stream
between two puts (the embedded moto server reshards as AWS does:
:mod:`lakehouse.dev.moto_kinesis`).
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from lakehouse.dev.simulator import PRODUCTS

KINDS = ("received", "sold", "adjusted")
NOT_JSON = b"stock count: twelve"
NOT_UTF8 = b'{"event_id": "E-\xff\xfe"}'


def _rng(seed: int, window: int) -> random.Random:
    return random.Random(int.from_bytes(hashlib.sha256(f"{seed}:{window}".encode()).digest()[:8], "big"))


def events(window: int, *, start: datetime, interval: timedelta = timedelta(minutes=15), seed: int = 7,
           count: int = 12) -> list[dict[str, Any]]:
    """The ``count`` distinct inventory events of window ``window`` (from 1), which starts at ``start``."""
    rng = _rng(seed, window)
    out = []
    for n in range(count):
        kind = rng.choice(KINDS)
        size = rng.randint(1, 20)
        quantity = size if kind == "received" else -size if kind == "sold" else rng.choice((-1, 1)) * rng.randint(1, 3)
        at = start + timedelta(seconds=rng.randrange(int(interval.total_seconds())))
        out.append({
            "event_id": f"E-{window:04d}-{n:03d}", "product_id": rng.choice(PRODUCTS)[0], "kind": kind,
            "quantity": quantity, "event_time": at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        })
    return out


@dataclass(frozen=True)
class Put:
    """One record put: its data, its partition key, and where Kinesis placed it."""

    data: bytes
    key: str
    shard: str
    sequence: str


class ShopStream:
    """Writes the shop's inventory events to ``stream`` through ``kinesis`` (a boto3 client)."""

    def __init__(self, kinesis: Any, stream: str, *, seed: int = 7, per_window: int = 12,
                 start: datetime = datetime(2026, 1, 1, tzinfo=UTC), interval: timedelta = timedelta(minutes=15)) -> None:
        self.kinesis, self.stream, self.seed, self.per_window = kinesis, stream, seed, per_window
        self.start, self.interval = start, interval

    def create(self, shards: int = 2) -> ShopStream:
        """Create the stream with ``shards`` shards and wait until it is active."""
        self.kinesis.create_stream(StreamName=self.stream, ShardCount=shards)
        self.kinesis.get_waiter("stream_exists").wait(StreamName=self.stream, WaiterConfig={"Delay": 0.1})
        return self

    def window(self, k: int) -> list[dict[str, Any]]:
        """The distinct events of window ``k``."""
        return events(k, start=self.start + (k - 1) * self.interval, interval=self.interval, seed=self.seed,
                      count=self.per_window)

    def records(self, k: int, *, bad: bool = False) -> list[tuple[bytes, str]]:
        """What window ``k`` puts, in order: its events, two of them again, and with ``bad`` two bad records."""
        found = self.window(k)
        out = [(json.dumps(e, separators=(",", ":")).encode(), str(e["product_id"])) for e in found]
        out += out[:2]
        if bad:
            out += [(NOT_JSON, "P-000"), (NOT_UTF8, "P-001")]
        return out

    def put(self, records: list[tuple[bytes, str]]) -> list[Put]:
        """Put ``records`` (data, partition key) in order, one call each (so their order is kept)."""
        done = []
        for data, key in records:
            answer = self.kinesis.put_record(StreamName=self.stream, Data=data, PartitionKey=key)
            done.append(Put(data, key, answer["ShardId"], answer["SequenceNumber"]))
        return done

    def put_window(self, k: int, *, bad: bool = False) -> list[Put]:
        """Put window ``k``'s records."""
        return self.put(self.records(k, bad=bad))

    def open_shards(self) -> list[dict[str, Any]]:
        """The stream's open shards (no ending sequence number), by starting hash key."""
        shards = self.kinesis.list_shards(StreamName=self.stream)["Shards"]
        live = [s for s in shards if "EndingSequenceNumber" not in s["SequenceNumberRange"]]
        return sorted(live, key=lambda s: int(s["HashKeyRange"]["StartingHashKey"]))

    def split_shard(self, shard: str | None = None) -> tuple[str, ...]:
        """Split ``shard`` (the first open one by default) at the middle of its hash range; the children's ids."""
        target = next(s for s in self.open_shards() if shard is None or s["ShardId"] == shard)
        low, high = int(target["HashKeyRange"]["StartingHashKey"]), int(target["HashKeyRange"]["EndingHashKey"])
        before = {s["ShardId"] for s in self.open_shards()}
        self.kinesis.split_shard(StreamName=self.stream, ShardToSplit=target["ShardId"],
                                 NewStartingHashKey=str((low + high + 1) // 2))
        return tuple(sorted({s["ShardId"] for s in self.open_shards()} - before))

    def merge_shards(self, first: str | None = None) -> str:
        """Merge ``first`` (the first open shard by default) with the open shard after it; the child's id."""
        live = self.open_shards()
        at = next(i for i, s in enumerate(live) if first is None or s["ShardId"] == first)
        before = {s["ShardId"] for s in live}
        self.kinesis.merge_shards(StreamName=self.stream, ShardToMerge=live[at]["ShardId"],
                                  AdjacentShardToMerge=live[at + 1]["ShardId"])
        (child,) = {s["ShardId"] for s in self.open_shards()} - before
        return child


class Throttle:
    """A loopback front of a Kinesis endpoint that throttles: a context manager.

    The first ``count`` calls of ``operation`` (``GetRecords`` …) are answered as a shard
    over its read throughput is (HTTP 400, ``ProvisionedThroughputExceededException``, or
    another error ``code``: ``ResourceInUseException`` for a stream being updated …);
    every other request goes on to ``upstream`` as it came. :attr:`throttled` counts the
    answers it made up, :attr:`forwarded` the calls it passed on, by operation.
    """

    def __init__(self, upstream: str, *, operation: str = "GetRecords", count: int = 0,
                 code: str = "ProvisionedThroughputExceededException") -> None:
        import http.client
        import threading
        from collections import Counter
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
        from urllib.parse import urlsplit

        target = urlsplit(upstream)
        self.operation, self.count = operation, count
        self.throttled: Counter[str] = Counter()
        self.forwarded: Counter[str] = Counter()
        lock, front = threading.Lock(), self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # quiet
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                called = (self.headers.get("X-Amz-Target") or "").rpartition(".")[2]
                with lock:
                    throttle = called == front.operation and front.count > 0
                    front.count -= throttle
                    (front.throttled if throttle else front.forwarded)[called] += 1
                if throttle:
                    status, headers, data = 400, [("Content-Type", "application/x-amz-json-1.1")], json.dumps({
                        "__type": code, "message": "Rate exceeded for shard in stream (injected by the test front)"}).encode()
                else:
                    conn = http.client.HTTPConnection(target.hostname or "127.0.0.1", target.port or 80, timeout=60)
                    try:
                        conn.request("POST", self.path, body=body, headers=dict(self.headers.items()))
                        answer = conn.getresponse()
                        status, data = answer.status, answer.read()
                        headers = [(k, v) for k, v in answer.getheaders() if k.lower() not in ("content-length", "connection", "transfer-encoding")]
                    finally:
                        conn.close()
                self.send_response(status)
                for k, v in headers:
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        class Server(ThreadingHTTPServer):
            daemon_threads = True

        self._server = Server(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def endpoint_url(self) -> str:
        """The front's endpoint on the loopback interface."""
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> Throttle:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
