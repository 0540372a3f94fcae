"""Silver: type, check, deduplicate and merge a bronze increment by business key.

A promotion is two steps so that the gate sits between them (invariant 3):
:func:`prepare` reads the bronze versions silver has not consumed yet, types them and
runs the Soda gate; :func:`commit` merges the clean rows and records the consumed bronze
version in the same Delta commit (invariant 1). Rejected rows go to
``<warehouse>/quarantine/<table>`` with the rule they broke (``_rule``, such as ``unknown
product_id``), every reason in words (``_reject_reason``), the raw text, the batch id and the
source position (file and line).
"""

from __future__ import annotations

import dataclasses
import logging

from lakehouse.config import Settings
from lakehouse.errors import StaleBatch
from lakehouse.layers.quarantine import QUARANTINE_SCHEMA, reason_counts, reason_examples
from lakehouse.layers.silver.batch import (
    Counts,
    SilverBatch,
    SilverResult,
)
from lakehouse.layers.silver.increment import (
    bounded_end,
    read_increment,
    reference_keys,
    referenced_values,
)
from lakehouse.layers.silver.merge import merge, schema_change, silver_schema
from lakehouse.layers.silver.prepare import prepare
from lakehouse.quality import blocking_error

__all__ = [
    "QUARANTINE_SCHEMA", "Counts", "SilverBatch", "SilverResult", "bounded_end", "commit", "prepare",
    "read_increment", "reason_counts", "reason_examples", "reference_keys", "referenced_values", "schema_change",
    "silver_schema",
]

log = logging.getLogger(__name__)


def commit(settings: Settings, batch: SilverBatch) -> SilverResult:
    """Quarantine the rejected rows and merge the clean ones; records the bronze version.

    A batch that another writer's promotion overlaps (it committed part of the bronze
    versions this batch was prepared from: :class:`~lakehouse.errors.StaleBatch`) is
    prepared once more from the new snapshot, gated again, and committed; stale a second
    time, it fails with that said, and the next run promotes the rest.
    """
    try:
        return merge(settings, batch)
    except StaleBatch as stale:
        if batch.dataset is None:
            raise
        log.warning("%s: %s; preparing it again from the new snapshot (once)", batch.spec.qualified_name, stale)
        fresh = prepare(settings, batch.dataset, batch.upstream, now=batch.now)
        if fresh is None:  # the other writer promoted all of it
            return SilverResult(table=batch.spec.qualified_name, bronze_version=None, counts=None, version=None, skipped=True)
        error = blocking_error([fresh.gate])
        if error is not None:
            raise error from stale
        try:
            return merge(settings, dataclasses.replace(fresh, dataset=None))
        except StaleBatch as again:
            msg = f"{again} (stale again after one re-prepare from the new snapshot; the next run promotes the rest)"
            raise StaleBatch(msg) from stale
