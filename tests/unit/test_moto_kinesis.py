"""The embedded moto server reshards Kinesis streams as AWS does (lakehouse/dev/moto_kinesis.py).

In-process (moto's ``mock_aws``), the same model code the server process runs: after a
split, records go to the children and the closed parent keeps its own, readable to its
end, where ``GetRecords`` gives no next iterator; a merge's child starts empty.
"""

from __future__ import annotations

from typing import Any

import boto3
from moto import mock_aws

from lakehouse.dev.moto_kinesis import faithful_resharding
from lakehouse.dev.shop_stream import ShopStream


def read_all(kinesis: Any, stream: str, shard: str) -> tuple[list[bytes], bool]:
    """Every record of ``shard`` from its start, and whether the shard ended (no next iterator)."""
    iterator = kinesis.get_shard_iterator(StreamName=stream, ShardId=shard, ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    data: list[bytes] = []
    for _ in range(10):
        answer = kinesis.get_records(ShardIterator=iterator)
        data += [r["Data"] for r in answer["Records"]]
        iterator = answer.get("NextShardIterator")
        if iterator is None or not answer["Records"]:
            break
    return data, iterator is None


def test_a_split_and_a_merge_keep_records_where_aws_keeps_them() -> None:
    faithful_resharding()
    faithful_resharding()  # idempotent
    with mock_aws():
        kinesis = boto3.session.Session().client("kinesis", region_name="us-east-1", aws_access_key_id="testing",
                                                 aws_secret_access_key="testing")
        stream = ShopStream(kinesis, "resharded").create(shards=1)
        before = stream.put([(b'{"n": %d}' % n, f"P-{n:03d}") for n in range(6)])
        low, high = stream.split_shard()
        after = stream.put([(b'{"n": %d}' % n, f"P-{n:03d}") for n in range(6, 12)])

        assert {p.shard for p in before} == {"shardId-000000000000"}
        assert {p.shard for p in after} <= {low, high} and len({p.shard for p in after}) == 2  # not the closed parent
        parent, ended = read_all(kinesis, "resharded", "shardId-000000000000")
        assert (parent, ended) == ([p.data for p in before], True)  # its own records, then the end
        for child in (low, high):
            assert read_all(kinesis, "resharded", child) == ([p.data for p in after if p.shard == child], False)

        merged = stream.merge_shards(low)
        assert read_all(kinesis, "resharded", merged) == ([], False)  # nothing copied into the child
        assert read_all(kinesis, "resharded", low)[1] and read_all(kinesis, "resharded", high)[1]  # both closed, ended
        latest = stream.put([(b'{"n": 99}', "P-099")])
        assert [p.shard for p in latest] == [merged]
