"""``make test``'s runner: the suite as two pytest processes at once, one per shard.

Most of the suite's time is spent in processes of its own (a `lakehouse run` killed at a
crash point, the demo, the serve stack, the in-order build) and in waits for them, so one
pytest process keeps about one of the machine's cores busy. Two shards (``--shard`` in
tests/conftest.py: the tests that use the session's in-order warehouse, and all the
others) each start their own moto server and Prefect API and run side by side; this
prints each shard's output as it comes, prefixed with its name, and exits non-zero if
either failed.

    python -m tests.shards [pytest arguments ...]
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time

SHARDS = ("in-order", "others")
"""``--shard``: the tests that use the session's in-order warehouse (its fixture closure
holds ``in_order_build``) and those marked ``in_order_shard`` (a few slow ones, to balance the
two), or all the others."""
NO_TESTS = 5
"""pytest's exit code when a shard's selection holds no test (``-k`` chose the other's)."""


def _relay(name: str, proc: subprocess.Popen[str]) -> None:
    assert proc.stdout is not None
    for line in proc.stdout:
        sys.stdout.write(f"[{name}] {line}")
        sys.stdout.flush()


def main(args: list[str]) -> int:
    began = time.monotonic()
    procs = {name: subprocess.Popen([sys.executable, "-m", "pytest", "--shard", name, *args], stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT, text=True, bufsize=1)
             for name in SHARDS}
    relays = [threading.Thread(target=_relay, args=(name, proc), daemon=True) for name, proc in procs.items()]
    for relay in relays:
        relay.start()
    codes = {name: proc.wait() for name, proc in procs.items()}
    for relay in relays:
        relay.join()
    ran = [name for name, code in codes.items() if code != NO_TESTS]
    failed = {name: code for name, code in codes.items() if code not in (0, NO_TESTS)}
    took = time.monotonic() - began
    if not ran:
        print(f"no test selected in either shard ({took:.0f} s)")
        return NO_TESTS
    if failed:
        print(f"FAILED shards: {', '.join(f'{n} (exit {c})' for n, c in failed.items())} after {took:.0f} s")
        return 1
    print(f"both shards passed in {took:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
