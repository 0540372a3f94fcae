"""The README's least-privilege IAM policy allows every S3 operation the engine calls.

Grep-based, and honest about it: every boto3 S3 call in ``lakehouse/`` (``client.<op>(``,
``get_paginator("<op>")``) is mapped to the IAM action it needs; an operation missing from
the map fails the test, so a new call forces a look at the policy. delta-rs' and DuckDB's
requests do not appear in our code: the actions they need (measured on moto's access log,
see the README) are listed here and checked the same way.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DEV_TOOLS = {"moto_server.py", "s3proxy.py", "simulator.py"}
"""Not the engine: the embedded moto server (creates buckets), the test proxy, the simulator
(writes the landing area through ``ObjectStore.put``, which the engine never calls)."""

IAM_ACTION = {
    "get_object": {"s3:GetObject"},
    "head_object": {"s3:GetObject"},
    "put_object": {"s3:PutObject"},
    "delete_objects": {"s3:DeleteObject"},
    "delete_object": {"s3:DeleteObject"},
    "list_objects_v2": {"s3:ListBucket"},
    "list_objects": {"s3:ListBucket"},
    "copy_object": {"s3:GetObject", "s3:PutObject"},
}
DELTA_RS_AND_DUCKDB = {"s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:ListBucket", "s3:AbortMultipartUpload"}
_CALL = re.compile(r"get_paginator\(\"(\w+)\"\)|_client\.(?!get_paginator\b)(\w+)\(")


def _policy() -> dict:
    text = (ROOT / "README.md").read_text()
    block = re.search(r"<!-- iam-policy -->\s*```json\n(.*?)```", text, re.S)
    assert block, "the README has no <!-- iam-policy --> json block"
    return json.loads(block.group(1))


def _operations() -> dict[str, set[str]]:
    """boto3 S3 operation → the engine modules that call it."""
    found: dict[str, set[str]] = {}
    for path in sorted((ROOT / "lakehouse").rglob("*.py")):
        if path.name in DEV_TOOLS:
            continue
        for m in _CALL.finditer(path.read_text()):
            op = m.group(1) or m.group(2)
            found.setdefault(op, set()).add(path.name)
    return found


def _actions(statements: list[dict]) -> set[str]:
    out: set[str] = set()
    for st in statements:
        actions = st["Action"]
        out |= {actions} if isinstance(actions, str) else set(actions)
    return out


def test_the_grep_finds_the_engines_s3_calls() -> None:
    ops = _operations()
    # the calls known today (storage.py): if this fails the regex went blind, not the policy
    assert {"put_object", "get_object", "delete_objects", "list_objects_v2"} <= set(ops), ops


def test_the_policy_allows_every_s3_operation_the_engine_calls() -> None:
    ops = _operations()
    unmapped = sorted(set(ops) - set(IAM_ACTION))
    assert not unmapped, f"boto3 operations with no IAM action in this test's map: {unmapped} (add them, and to the README's policy)"
    needed = set().union(*(IAM_ACTION[op] for op in ops)) | DELTA_RS_AND_DUCKDB
    allowed = _actions(_policy()["Statement"])
    assert needed <= allowed, f"the README's policy lacks {sorted(needed - allowed)}"
    assert not {a for a in allowed if "*" in a}, "no wildcard actions"


def test_landing_is_read_only_and_listing_is_prefix_bound() -> None:
    statements = _policy()["Statement"]
    for st in statements:
        resources = [st["Resource"]] if isinstance(st["Resource"], str) else st["Resource"]
        if any("/landing/" in r for r in resources):
            assert _actions([st]) == {"s3:GetObject"}, st
        if "s3:ListBucket" in _actions([st]):
            assert st["Condition"]["StringLike"]["s3:prefix"], st
        assert all(r.startswith("arn:aws:s3:::BUCKET") for r in resources), st
    deletes = [st for st in statements if "s3:DeleteObject" in _actions([st])]
    assert all(_actions([st]) == {"s3:DeleteObject"} for st in deletes), "deletes are a statement of their own (maintenance)"
