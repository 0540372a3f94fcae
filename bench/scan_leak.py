"""``python -m bench.scan_leak``: the native memory one read of a Delta table keeps, per reader.

Repeats the same ``count(*)`` over a small partitioned Delta table through DuckDB's
``delta_scan``, through the same table attached with ``PIN_SNAPSHOT`` and detached again (as
gold reads its inputs), through ``read_parquet`` over the same files, and through delta-rs'
pyarrow dataset registered in DuckDB, and prints the RSS each read leaves behind (after a
warm-up, ``gc`` and ``malloc_trim``). Each reader runs in a process of its own.

It is the check for the leak that keeps the soak's memory rising (README, "Soak"): the
``delta`` extension of DuckDB 1.5.5 does not free each scan's metadata
(duckdb/duckdb-delta#279, fixed upstream by duckdb/duckdb-delta#360 after the newest
published ``duckdb-extension-delta`` wheel). When a newer pinned wheel prints about 0 kB
for ``delta_scan``, the leak is gone.
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import subprocess
import sys
import tempfile

READERS = ("delta_scan", "attach_pinned", "read_parquet", "arrow_dataset")


def _measure(reader: str, files: int, reads: int) -> float:
    import duckdb
    import psutil
    import pyarrow as pa
    from deltalake import DeltaTable, write_deltalake
    from duckdb_extensions import import_extension

    root = tempfile.mkdtemp(prefix="scan-leak-")
    for i in range(files):
        rows = pa.table({"k": range(i * 100, i * 100 + 100), "p": [i % 5] * 100, "s": ["x" * 20] * 100})
        write_deltalake(root, rows, mode="append", partition_by=["p"])
    import_extension("delta")
    db = duckdb.connect()
    db.load_extension("delta")
    libc = ctypes.CDLL("libc.so.6")
    process = psutil.Process()

    def rss() -> float:
        gc.collect()
        libc.malloc_trim(0)
        return process.memory_info().rss / 2**10

    warm = reads // 10
    before = 0.0
    for i in range(reads + warm):
        con = db.cursor()
        if reader == "delta_scan":
            con.execute(f"SELECT count(*) FROM delta_scan('{root}')").fetchall()
        elif reader == "attach_pinned":  # as gold reads its inputs (lakehouse.duck.pinned), then detached
            con.execute(f"ATTACH '{root}' AS pinned (TYPE delta, PIN_SNAPSHOT)")
            con.execute("SELECT count(*) FROM pinned").fetchall()
            con.execute("DETACH pinned")
        elif reader == "read_parquet":
            con.execute(f"SELECT count(*) FROM read_parquet('{root}/*/*.parquet')").fetchall()
        else:
            con.register("t_arrow", DeltaTable(root).to_pyarrow_dataset())
            con.execute("SELECT count(*) FROM t_arrow").fetchall()
            con.unregister("t_arrow")
        con.close()
        if i == warm - 1:
            before = rss()
    return (rss() - before) / reads


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=100, help="data files of the table")
    parser.add_argument("--reads", type=int, default=500, help="reads per reader")
    parser.add_argument("--reader", choices=READERS, help=argparse.SUPPRESS)  # one reader, in this process
    args = parser.parse_args(argv)
    if args.reader:
        print(f"{_measure(args.reader, args.files, args.reads):.1f}")
        return 0
    print(f"{args.reads} reads of a {args.files}-file Delta table, RSS kept per read:")
    for reader in READERS:
        out = subprocess.run([sys.executable, "-m", "bench.scan_leak", "--reader", reader, "--files", str(args.files),
                              "--reads", str(args.reads)], capture_output=True, text=True, check=True)
        print(f"  {reader:<14} {float(out.stdout.strip()):8.1f} kB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
