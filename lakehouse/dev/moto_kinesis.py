"""``python -m moto.server`` with Kinesis resharding as AWS does it: the embedded server's entry point.

moto 5.2's Kinesis splits and merges shards unlike AWS, in ways a stream reader cannot
be tested against: a record put after a split still goes to the closed parent (the first
shard whose hash range holds its key, open or not), a split moves the parent's records
into the stream again (new sequence numbers, the parent emptied), a merge copies both
parents' records into the child, and ``GetRecords`` never ends a closed shard (it always
returns a next iterator). :func:`faithful_resharding` replaces those four behaviours with
what the Kinesis API documents: records go to the open shard of their hash key; a closed
parent keeps its records, readable to its end, where ``GetRecords`` returns no
``NextShardIterator``; children start empty. Everything else (S3 included) is moto's.

:func:`lakehouse.dev.moto_server.start_moto_server` runs this module; the server process
applies the patch before it serves anything.

Two more differences from moto, for the local shop: sequence numbers grow with time, as
AWS's do (moto counts from 1 in each shard, so a restarted server, whose streams start
empty, would number new records below the ones a cursor already holds, and a reader
would skip them); and with :data:`CLOCK` set, records arrive at a simulated time
(:func:`simulated_clock`), so ``lakehouse demo`` can run the shop's windows of January
2026 with each window's events arriving inside it.
"""

from __future__ import annotations

import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

CLOCK = "LAKEHOUSE_DEV_KINESIS_CLOCK"
"""An environment variable of the server process: a file holding the seconds to add to its
clock for the arrival times of Kinesis records (:meth:`lakehouse.dev.moto_server.MotoServer.set_clock`)."""


def simulated_clock(path: Path) -> None:
    """Kinesis records of this process arrive at the real time plus the seconds written in ``path`` (0 while it is absent)."""
    from moto.kinesis import models as moto_models

    models: Any = moto_models  # moto's module, patched in place
    real = models.utcnow

    def utcnow() -> Any:
        try:
            offset = float(path.read_text() or 0)
        except (OSError, ValueError):
            offset = 0.0
        return real() + timedelta(seconds=offset)

    models.utcnow = utcnow


def faithful_resharding() -> None:
    """Patch moto's Kinesis models in this process (see the module doc); idempotent."""
    from moto.kinesis import models
    from moto.kinesis.exceptions import InvalidArgumentError
    from moto.kinesis.utils import decompose_shard_iterator
    from moto.utilities.utils import md5_hash

    stream_type: Any = models.Stream
    backend_type: Any = models.KinesisBackend
    if getattr(stream_type, "_lakehouse_resharding", False):
        return
    shard_type: Any = models.Shard

    def get_shard_for_key(self: Any, partition_key: str, explicit_hash_key: str | None) -> Any:
        if not isinstance(partition_key, str) or len(partition_key) > 256:
            msg = "partition_key"  # moto's own argument error names the argument
            raise InvalidArgumentError(msg)
        if explicit_hash_key:
            key = int(explicit_hash_key)
            if key >= 2**128:
                msg = "explicit_hash_key"
                raise InvalidArgumentError(msg)
        else:
            key = int(md5_hash(partition_key.encode("utf-8")).hexdigest(), 16)
        return next((s for s in self.shards.values() if s.is_open and s.starting_hash <= key <= s.ending_hash), None)

    def next_id(self: Any) -> int:
        return max(s._shard_id for s in self.shards.values()) + 1  # noqa: SLF001 (moto's own numbering)

    def split_shard(self: Any, shard_to_split: str, new_starting_hash_key: str) -> None:
        shard = self.get_shard(shard_to_split)
        start = int(new_starting_hash_key)
        if not shard.starting_hash < start <= shard.ending_hash:
            msg = f"NewStartingHashKey {start} is not inside the hash key range of {shard_to_split}"
            raise InvalidArgumentError(message=msg)
        if not shard.is_open:
            msg = f"Shard {shard_to_split} has already been merged or split, and thus is not eligible for merging or splitting."
            raise InvalidArgumentError(message=msg)
        first = next_id(self)
        for number, low, high in ((first, shard.starting_hash, start - 1), (first + 1, start, shard.ending_hash)):
            child = shard_type(number, low, high, parent=shard.shard_id)
            self.shards[child.shard_id] = child
        shard.is_open = False

    def merge_shards(self: Any, shard_to_merge: str, adjacent_shard_to_merge: str) -> None:
        one, other = self.get_shard(shard_to_merge), self.get_shard(adjacent_shard_to_merge)
        low, high = sorted((one, other), key=lambda s: s.starting_hash)
        if low.ending_hash + 1 != high.starting_hash:
            raise InvalidArgumentError(adjacent_shard_to_merge)
        if not (one.is_open and other.is_open):
            msg = f"Shard {shard_to_merge} or {adjacent_shard_to_merge} has already been merged or split."
            raise InvalidArgumentError(message=msg)
        child = shard_type(next_id(self), low.starting_hash, high.ending_hash, parent=one.shard_id,
                           adjacent_parent=other.shard_id)
        self.shards[child.shard_id] = child
        one.is_open = other.is_open = False

    original_get_records = backend_type.get_records

    def get_records(self: Any, stream_arn: str | None, shard_iterator: str, limit: int | None) -> tuple[Any, ...]:
        following, records, behind = original_get_records(self, stream_arn, shard_iterator, limit)
        stream_name, shard_id, last = decompose_shard_iterator(following)
        shard = self.describe_stream(stream_arn=stream_arn, stream_name=stream_name).get_shard(shard_id)
        if not shard.is_open and int(last) >= shard.get_max_sequence_number():
            return None, records, behind  # a closed shard read to its end: go on with its children
        return following, records, behind

    def put_record(self: Any, partition_key: str, data: str, explicit_hash_key: str) -> str:
        last = self.get_max_sequence_number() if self.records else 0
        number = max(last + 1, time.time_ns() // 1000)  # grows with time, across restarts too
        self.records[number] = models.Record(partition_key, data, number, explicit_hash_key)
        return str(number)

    shard_type.put_record = put_record
    stream_type.get_shard_for_key = get_shard_for_key
    stream_type.split_shard = split_shard
    stream_type.merge_shards = merge_shards
    backend_type.get_records = get_records
    stream_type._lakehouse_resharding = True  # noqa: SLF001 (a mark on moto's class: patched once)


if __name__ == "__main__":
    import os

    from moto.server import main

    faithful_resharding()
    if os.environ.get(CLOCK):
        simulated_clock(Path(os.environ[CLOCK]))
    main(sys.argv[1:])
