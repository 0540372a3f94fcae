"""The Kinesis stream source: every shard of a stream, read from its checkpointed sequence number.

The cursor (:class:`ShardCursor`) holds, per shard, the sequence number of the last record
read, and the shards finished (closed by a split or a merge, and read to their end). A
read lists the stream's shards and reads each one that is not finished and whose parents
are, with an ``AFTER_SEQUENCE_NUMBER`` iterator from the cursor (a shard never read starts
at ``TRIM_HORIZON``, or, with ``start_at: latest``, at the time of the dataset's first
read), until it has caught up, reaches a record that arrived at or after the window's end,
or is closed and read to its end (``GetRecords`` gives no next iterator): then its children
become readable in the same read. So a record of a partition key is never read before one
that its parent shard holds, and per-key order holds across a split or a merge.

A batch (one bronze commit) is at most ``max_batch_records`` records and about
``max_batch_bytes`` of their data, from one shard or several, with the cursor after it.

A record is stored as its data (JSON object text; bytes that are not UTF-8 are decoded
with replacement characters, so silver quarantines the record with the reason "encoding:
not valid UTF-8" instead of it being dropped here), ``_source_position`` =
``<shard id>:<sequence number>`` padded so positions sort as the numbers do,
``_source_version`` = the sequence number as Kinesis wrote it, ``_landed_at`` = its
approximate arrival time.

Throttling and connection errors are retried by botocore (standard mode: exponential
backoff with jitter, ``max_attempts`` per call); what is left, and a stream being created
or updated, raises :class:`~lakehouse.errors.SourceUnavailable`. A missing stream, a
refused credential or a rejected request raises :class:`~lakehouse.errors.SourceRefused`:
no retry cures those. An iterator that expired (Kinesis keeps one 5 minutes) is replaced
by one from the cursor.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol, cast
from urllib.parse import urlparse

import polars as pl
from botocore.exceptions import NoCredentialsError, PartialCredentialsError

from lakehouse.config import Settings
from lakehouse.errors import ConfigError, SourceRefused, SourceUnavailable, is_transient, one_line
from lakehouse.sources.base import RECORDS, Batch, Cursor, Limit, RecordSource, register
from lakehouse.specs import Dataset
from lakehouse.storage import is_loopback

MAX_GET_RECORDS = 10_000
"""The most records one ``GetRecords`` call returns (the API's limit)."""
EMPTY_POLLS = 20
"""Empty answers in a row after which a shard that says it is behind is left for the next read."""
AWS_DIGITS = 56
"""Digits of the sequence numbers AWS writes; a longer one (the API allows 129) sorts after them."""
_REFUSED = frozenset({
    "ResourceNotFoundException", "AccessDeniedException", "UnrecognizedClientException",
    "InvalidSignatureException", "ExpiredTokenException", "KMSAccessDeniedException", "ValidationException",
    "InvalidArgumentException",
})
"""Codes of a refusal: no such stream, a credential or key not allowed, a request the stream rejects (a sequence number not in the shard)."""
_BUSY = frozenset({"LimitExceededException", "ResourceInUseException", "KMSThrottlingException", "InternalFailure"})
"""Codes that mean "not now" for Kinesis besides the AWS-wide ones: a call rate limit, a stream being created or updated."""


def sortable(sequence: str) -> str:
    """``sequence`` (a decimal string) padded so that text order is numeric order."""
    return sequence.zfill(AWS_DIGITS) if len(sequence) <= AWS_DIGITS else "~" + sequence.zfill(129)


@dataclass(frozen=True)
class ShardCursor(Cursor):
    """Where a stream's reading stands: the last sequence number read per shard, and the shards finished."""

    read: Mapping[str, str] = field(default_factory=dict)
    """Shard id → sequence number of the last record read (a finished shard is not in it)."""
    finished: frozenset[str] = frozenset()
    """Shards closed and read to their end (forgotten once the stream no longer lists them)."""
    since: str | None = None
    """``start_at: latest``: when the dataset first read the stream (ISO time); new shards start there."""

    def to_json(self) -> dict[str, Any]:
        """``{"shards": {id: sequence}, "finished": [id, ...], "since": time}``."""
        return {"shards": dict(sorted(self.read.items())), "finished": sorted(self.finished),
                **({"since": self.since} if self.since else {})}


class KinesisClient(Protocol):
    """The boto3 Kinesis calls the source makes."""

    def list_shards(self, **kwargs: Any) -> dict[str, Any]:
        """``ListShards``: a page of the stream's shards."""
        ...

    def get_shard_iterator(self, **kwargs: Any) -> dict[str, Any]:
        """``GetShardIterator``: where to read a shard from."""
        ...

    def get_records(self, **kwargs: Any) -> dict[str, Any]:
        """``GetRecords``: records after an iterator, and the next iterator (none at a closed shard's end)."""
        ...

    def close(self) -> None:
        """Close the client's connections."""
        ...


def client(decl: Any, settings: Settings) -> KinesisClient:
    """A boto3 Kinesis client for ``decl`` (a ``KinesisDecl``): endpoint and credentials from ``settings`` unless declared, botocore's retries."""
    import boto3.session
    from botocore.config import Config

    endpoint = decl.endpoint_url or settings.aws_endpoint_url
    if endpoint and urlparse(endpoint).scheme == "http" and not is_loopback(urlparse(endpoint).hostname) \
            and not settings.s3_allow_http:
        msg = (f"kinesis endpoint {endpoint!r} is plain http to a host that is not loopback: use https, "
               "or set LAKEHOUSE_S3_ALLOW_HTTP=true to send credentials and records unencrypted")
        raise ConfigError(msg)
    key, secret = settings.aws_access_key_id, settings.aws_secret_access_key
    config = Config(retries={"mode": "standard", "total_max_attempts": decl.max_attempts},
                    connect_timeout=decl.timeout, read_timeout=decl.timeout)
    made = boto3.session.Session().client(
        "kinesis", endpoint_url=endpoint, region_name=decl.region or settings.aws_region, config=config,
        aws_access_key_id=key.get_secret_value() if key else None,
        aws_secret_access_key=secret.get_secret_value() if secret else None,
        verify=None if settings.s3_verify_tls else False,
    )
    return cast(KinesisClient, made)


class KinesisSource(RecordSource[ShardCursor]):
    """The records of one stream, shard by shard, parents before children."""

    kind = "kinesis"

    def __init__(self, kinesis: KinesisClient, *, stream: str, region: str,
                 start_at: str = "trim_horizon", clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.kinesis, self.stream, self.region, self.start_at, self.clock = kinesis, stream, region, start_at, clock

    def start(self) -> ShardCursor:
        """No shard read yet."""
        return ShardCursor()

    def cursor_from(self, data: dict[str, Any]) -> ShardCursor:
        """The cursor :meth:`ShardCursor.to_json` wrote."""
        return ShardCursor({str(k): str(v) for k, v in dict(data.get("shards") or {}).items()},
                           frozenset(str(s) for s in data.get("finished") or ()), data.get("since"))

    def describe(self) -> str:
        """``kinesis:<region>/<stream>``."""
        return f"kinesis:{self.region}/{self.stream}"

    def close(self) -> None:
        """Close the client."""
        self.kinesis.close()

    def probe(self) -> None:
        """One ``ListShards`` of the stream: missing or refused credentials, a stream that does not
        exist and an endpoint that does not answer (after botocore's retries) raise as :meth:`read` would."""
        self._call("ListShards", self.kinesis.list_shards, StreamName=self.stream, MaxResults=1)

    def read(self, cursor: ShardCursor, *, limit: Limit, until: datetime) -> Iterator[Batch[ShardCursor]]:
        """Batches of every readable shard's records after ``cursor``, parents before children (module doc)."""
        shards = self._shards()
        last = {k: v for k, v in cursor.read.items() if k in shards}
        finished = set(cursor.finished) & set(shards)
        since = cursor.since or (self.clock().isoformat() if self.start_at == "latest" else None)
        batch = _Pending(limit)
        caught_up: set[str] = set()

        def state() -> ShardCursor:
            return ShardCursor(dict(last), frozenset(finished), since)

        def readable(shard: str) -> bool:
            parents = (shards[shard].get("ParentShardId"), shards[shard].get("AdjacentParentShardId"))
            # a parent the stream no longer lists has expired: nothing of it is left to read first
            return all(p is None or p not in shards or p in finished for p in parents)

        while todo := [s for s in sorted(shards) if s not in finished and s not in caught_up and readable(s)]:
            for shard in todo:
                iterator: str | None = None
                empty = 0
                while True:
                    if batch.full:
                        yield batch.take(state())
                    if iterator is None:
                        iterator = self._iterator(shard, last.get(shard), since)
                    try:
                        answer = self._call("GetRecords", self.kinesis.get_records, ShardIterator=iterator,
                                            Limit=min(batch.room, MAX_GET_RECORDS))
                    except _IteratorExpired:  # held past its 5 minutes (a slow commit): a new one from the cursor
                        iterator = None
                        continue
                    got: list[dict[str, Any]] = answer.get("Records") or []
                    taken, late = batch.add(shard, got, until)
                    if taken:
                        last[shard] = str(got[taken - 1]["SequenceNumber"])
                    if late:  # arrived at or after the window's end: the next window's
                        caught_up.add(shard)
                        break
                    if taken < len(got):  # the batch filled inside this answer: go on after the last taken
                        iterator = None
                        continue
                    iterator = answer.get("NextShardIterator")
                    if iterator is None:  # closed and read to its end: its children may start
                        finished.add(shard)
                        last.pop(shard, None)
                        break
                    if not got:
                        empty += 1
                        if not answer.get("MillisBehindLatest") or empty >= EMPTY_POLLS:
                            caught_up.add(shard)
                            break
                    else:
                        empty = 0
        yield batch.take(state())

    def _shards(self) -> dict[str, dict[str, Any]]:
        """Every shard the stream lists (open, and closed within the retention period), by id."""
        found: dict[str, dict[str, Any]] = {}
        answer = self._call("ListShards", self.kinesis.list_shards, StreamName=self.stream)
        while True:
            found.update({s["ShardId"]: s for s in answer.get("Shards") or ()})
            token = answer.get("NextToken")
            if not token:
                return found
            answer = self._call("ListShards", self.kinesis.list_shards, NextToken=token)

    def _iterator(self, shard: str, after: str | None, since: str | None) -> str:
        """An iterator of ``shard`` after the sequence number ``after`` (else at the start of a new shard)."""
        if after is not None:
            where: dict[str, Any] = {"ShardIteratorType": "AFTER_SEQUENCE_NUMBER", "StartingSequenceNumber": after}
        elif since is not None:
            where = {"ShardIteratorType": "AT_TIMESTAMP", "Timestamp": datetime.fromisoformat(since)}
        else:
            where = {"ShardIteratorType": "TRIM_HORIZON"}
        answer = self._call("GetShardIterator", self.kinesis.get_shard_iterator,
                            StreamName=self.stream, ShardId=shard, **where)
        return str(answer["ShardIterator"])

    def _call(self, operation: str, call: Callable[..., dict[str, Any]], **kwargs: Any) -> dict[str, Any]:
        """``call(**kwargs)``, its failures (after botocore's retries) as the lakehouse's errors."""
        try:
            return call(**kwargs)
        except Exception as exc:
            code = str(((getattr(exc, "response", None) or {}).get("Error") or {}).get("Code") or "")
            where = f"kinesis stream {self.stream!r} in {self.region}"
            if isinstance(exc, NoCredentialsError | PartialCredentialsError):
                msg = (f"{where}: {operation}: no AWS credentials found ({type(exc).__name__}): set AWS_ACCESS_KEY_ID "
                       "and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE, or run where a role provides them")
                raise SourceRefused(msg) from None
            if code == "ExpiredIteratorException":
                raise _IteratorExpired from exc
            if code == "ResourceNotFoundException":
                msg = f"{where}: {operation}: the stream (or shard) does not exist: create it, or declare the stream that does"
                raise SourceRefused(msg) from exc
            if code in _REFUSED:
                msg = f"{where}: {operation} refused: {code}: {one_line(str(exc))}"
                raise SourceRefused(msg) from exc
            if code in _BUSY:  # not chained: is_transient would judge the 400 answer under it terminal
                msg = f"{where}: {operation} failed after retries: {code}: {one_line(str(exc))}"
                raise SourceUnavailable(msg) from None
            if is_transient(exc):
                msg = f"{where}: {operation} failed after retries: {one_line(str(exc))}"
                raise SourceUnavailable(msg) from exc
            raise


class _IteratorExpired(Exception):
    """A shard iterator older than Kinesis keeps them (5 minutes): get another from the cursor."""


class _Pending:
    """The records of the batch being filled, within its limit."""

    def __init__(self, limit: Limit) -> None:
        self.limit = limit
        self.raw: list[str] = []
        self.positions: list[str] = []
        self.versions: list[str] = []
        self.arrived: list[datetime] = []
        self.size = 0
        self.shards: set[str] = set()

    @property
    def room(self) -> int:
        return max(self.limit.records - len(self.raw), 1)

    @property
    def full(self) -> bool:
        return len(self.raw) >= self.limit.records or self.size >= self.limit.bytes

    def add(self, shard: str, got: list[dict[str, Any]], until: datetime) -> tuple[int, bool]:
        """Take records of ``got`` while there is room; (how many, whether one arrived at or after ``until``)."""
        for taken, record in enumerate(got):
            arrived = record["ApproximateArrivalTimestamp"].astimezone(UTC)
            if arrived >= until:
                return taken, True
            if self.full:
                return taken, False
            data: bytes = record["Data"]
            sequence = str(record["SequenceNumber"])
            self.raw.append(data.decode("utf-8", errors="replace"))
            self.positions.append(f"{shard}:{sortable(sequence)}")
            self.versions.append(sequence)
            self.arrived.append(arrived)
            self.size += len(data)
            self.shards.add(shard)
        return len(got), False

    def take(self, cursor: ShardCursor) -> Batch[ShardCursor]:
        """The batch so far with the cursor after it; the next one starts empty."""
        frame = pl.DataFrame(
            {"_raw": self.raw, "_source_position": self.positions, "_source_version": self.versions,
             "_line": [1] * len(self.raw), "_landed_at": self.arrived},
            schema=RECORDS,
        )
        details = {"records": frame.height, "shards": sorted(self.shards)}
        self.__init__(self.limit)
        return Batch(frame, cursor, details)


@register("kinesis")
def open_kinesis(dataset: Dataset, settings: Settings) -> KinesisSource:
    """The source of a dataset declared on a ``kind: kinesis`` source."""
    decl = dataset.connection  # a KinesisDecl (the engine reads the validated model, not the declaration module)
    assert getattr(decl, "kind", None) == "kinesis", f"{dataset.spec.qualified_name}: not a kinesis source"
    named_own = dataset.resource in ("", dataset.spec.name)
    if decl.stream is not None and not named_own and dataset.resource != decl.stream:
        msg = (f"{dataset.spec.qualified_name}: resource {dataset.resource!r} and its source's stream {decl.stream!r} "
               "disagree: name the stream in one place")
        raise ConfigError(msg)
    stream = decl.stream or dataset.resource or dataset.spec.name
    return KinesisSource(client(decl, settings), stream=stream, region=decl.region or settings.aws_region,
                         start_at=decl.start_at)
