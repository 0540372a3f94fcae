"""A promotion's counts are reconciled with figures that are not derived from them."""

from __future__ import annotations

import pytest

from lakehouse.errors import CountsMismatch, TerminalError
from lakehouse.layers.silver import Counts


def test_counts_that_add_up_but_disagree_with_bronze_or_the_keys_fail_before_the_commit() -> None:
    counts = Counts(read=10, merged=6, rejected=2, duplicates=1, conflicts=1, superseded=3)
    counts.check()  # they add up among themselves
    counts.reconcile("silver.orders", bronze_rows=13, keys=6)  # and with bronze and the keys
    counts.reconcile("silver.orders", bronze_rows=None, keys=6)  # a commit without metrics: not checked
    with pytest.raises(CountsMismatch, match="bronze's commits added 14 rows, but read 10 \\+ superseded 3"):
        counts.reconcile("silver.orders", bronze_rows=14, keys=6)  # a bronze row neither read nor superseded
    with pytest.raises(CountsMismatch, match="7 distinct keys passed the checks, but 6 rows"):
        counts.reconcile("silver.orders", bronze_rows=13, keys=7)  # a collapse that lost a key
    assert issubclass(CountsMismatch, TerminalError)  # a retry cannot make them agree
