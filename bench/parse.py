"""``parse_records`` alone on generated order lines: ``python -m bench.parse [--lines 1000000] [--repeat 2]``.

Prints the best wall and CPU time of ``--repeat`` parses and the process's peak RSS. Run it
from another checkout (``PYTHONPATH=<checkout> python -m bench.parse`` with this file copied)
to compare two versions on the same machine.
"""

from __future__ import annotations

import argparse
import resource
import time
from datetime import UTC, datetime

import polars as pl

from lakehouse.dev.shop import ORDER_ITEMS
from lakehouse.layers.silver.transform import parse_records


def order_lines(n: int) -> pl.DataFrame:
    """``n`` clean order lines as bronze holds them (``_raw`` JSON text plus lineage)."""
    i = pl.col("i")
    raw = pl.format(
        '{{"order_id": "O{}", "line_no": {}, "product_id": "P{}", "category": "toys", "quantity": {}, '
        '"unit_price": "{}.99", "updated_at": "2026-01-01T00:{}:00Z"}}',
        i // 4, i % 4 + 1, i % 50, i % 5 + 1, i % 100, (i % 60).cast(pl.String).str.zfill(2),
    )
    return pl.DataFrame({"i": range(n)}).select(
        raw.alias("_raw"), pl.lit("b").alias("_batch_id"), pl.lit("k").alias("_source_position"),
        i.cast(pl.Int64).alias("_line"), pl.lit(datetime(2026, 1, 1, tzinfo=UTC)).alias("_landed_at"),
    )


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    lines = order_lines(args.lines)
    known = {"reference(product_id)": pl.Series([f"P{i}" for i in range(50)])}
    runs = []
    for _ in range(args.repeat):
        wall, cpu = time.perf_counter(), _cpu()
        out = parse_records(lines.lazy(), ORDER_ITEMS, known).collect()
        runs.append((time.perf_counter() - wall, _cpu() - cpu))
    clean = out.get_column("_reject_reason").null_count()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"parse_records, {args.lines} lines ({clean} clean): best wall {min(r[0] for r in runs):.2f} s, "
          f"best CPU {min(r[1] for r in runs):.2f} s, peak RSS {peak:.0f} MB")


if __name__ == "__main__":
    main()
