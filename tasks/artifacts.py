"""Artifacts sent to the Prefect API beside the work, not in its way.

Every artifact is one blocking request to the API (25–50 ms each, more on a busy server),
and a window publishes one table per gate and a gold preview: about a fifth of Prefect's
whole cost per window when they were sent inline. :func:`later` sends one from a
background thread, in the caller's Prefect context (so it belongs to the same flow and
task run), while the next step computes; :func:`settled` waits for every one sent so far,
and a flow calls it before it ends, so no artifact is lost or arrives after its run.
Only the main thread sends in the background: a task in a worker thread (the ``threads``
runner, or a Dask worker process, whose pending sends no flow would wait for) sends its
artifacts itself, before the task ends, as before.
An artifact that cannot be created is logged as a warning: a missing table in the UI is
not a reason to fail a window whose data committed.
"""

from __future__ import annotations

import contextvars
import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lakehouse-artifacts")
_pending: list[Future[Any]] = []
_lock = threading.Lock()
_log = logging.getLogger("lakehouse.artifacts")


def later(create: Callable[..., Any], **kwargs: Any) -> None:
    """Call ``create(**kwargs)`` (``create_table_artifact`` …) on the background thread."""
    if threading.current_thread() is not threading.main_thread():
        create(**kwargs)
        return
    future = _pool.submit(contextvars.copy_context().run, create, **kwargs)
    with _lock:
        _pending.append(future)


def settled(timeout: float = 60.0) -> int:
    """Wait for every artifact sent so far; the number that failed (each logged)."""
    with _lock:
        waiting = list(_pending)
        _pending.clear()
    failed = 0
    for future in waiting:
        try:
            future.result(timeout=timeout)
        except Exception as exc:  # the window's data is committed whatever the UI shows
            failed += 1
            _log.warning("an artifact could not be created: %s", exc)
    return failed
