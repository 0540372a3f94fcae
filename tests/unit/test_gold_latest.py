"""The current row of every key a change data feed names (what gold's input gates check)."""

from __future__ import annotations

import polars as pl

from lakehouse.layers.gold import _latest


def test_the_last_image_of_each_key_stands_unless_it_was_deleted() -> None:
    feed = pl.DataFrame(
        {
            "k": ["a", "b", "b", "b", "c", "c", "d", "e", "e"],
            "v": [1, 1, 1, 2, 1, 1, 7, 1, 2],
            "_change_type": ["insert", "insert", "update_preimage", "update_postimage", "insert", "delete",
                             "insert", "update_preimage", "update_postimage"],
            "_commit_version": [1, 1, 2, 2, 1, 3, 4, 5, 5],  # e: its feed starts at an update
        }
    )
    got = _latest(feed, ["k"]).sort("k")
    assert got.select("k", "v").rows() == [("a", 1), ("b", 2), ("d", 7), ("e", 2)]
