"""The peer a user would pick: dlt loading the same JSONL records with a merge into Delta.

dlt's own filesystem source reads the landing files (``read_jsonl``); each dataset is a
resource with its primary key, ``write_disposition="merge"`` and ``table_format="delta"``,
loaded to dlt's filesystem destination in a local folder. Telemetry is off.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

KEYS = {"orders": ["order_id"], "order_lines": ["order_id", "line_no"]}


def load_with_dlt(job: dict[str, Any], measured: Callable[..., Any]) -> dict[str, Any]:
    """Load ``job["windows"]`` (lists of globs per window) in order; the last load is timed."""
    os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")
    os.environ.setdefault("RUNTIME__LOG_LEVEL", "WARNING")
    import dlt
    from dlt.sources.filesystem import filesystem, read_jsonl

    landing, dest = job["landing"], job["dest"]

    def source(globs: dict[str, str]) -> list[Any]:
        resources = []
        for name, glob in globs.items():
            files = filesystem(bucket_url=landing, file_glob=glob)
            resource = (files | read_jsonl()).with_name(name)
            resource.apply_hints(primary_key=KEYS[name], write_disposition="merge", table_format="delta")
            resources.append(resource)
        return resources

    pipe = dlt.pipeline(
        pipeline_name="bench_dlt",
        pipelines_dir=job["pipelines_dir"],
        destination=dlt.destinations.filesystem(bucket_url=dest),
        dataset_name="shop",
    )
    loads = job["windows"]
    for globs in loads[:-1]:
        pipe.run(source(globs))
    figures, info = measured(lambda: pipe.run(source(loads[-1])))
    rows = _delta_rows(os.path.join(dest, "shop"), list(loads[-1]))
    return {**figures, "rows": rows, "loads": len(info.loads_ids)}


def _delta_rows(root: str, tables: list[str]) -> dict[str, int]:
    from deltalake import DeltaTable

    out = {}
    for name in tables:
        try:
            out[name] = int(DeltaTable(os.path.join(root, name)).to_pyarrow_dataset().count_rows())
        except Exception:  # a table dlt did not create: report it as missing
            out[name] = -1
    return out
