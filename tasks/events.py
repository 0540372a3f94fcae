"""Prefect events for the rows a gold commit inserted (a model's declared ``event:``).

Each row new by key in the commit (:func:`lakehouse.layers.gold.inserted`) becomes one event:
its name from the declaration, resource ``lakehouse.gold.<model>.<key values joined by .>``,
the row's columns as the payload. The event's id is a UUID5 of that resource id, so the same
row is always the same event: the Prefect server stores an id once, and a retried task (or a
run that re-reads the same commit) cannot record an alert twice. A re-run that commits
nothing (the window was done) sends nothing.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import pyarrow as pa
from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.events import emit_event

from lakehouse.config import Settings
from lakehouse.layers import gold
from lakehouse.specs import GoldModel
from tasks.common import RETRY, engine_errors


def _text(value: Any) -> str:
    return value.isoformat() if isinstance(value, date | datetime) else str(value)


def _json(value: Any) -> Any:
    if isinstance(value, date | datetime | Decimal):
        return _text(value)
    return value


def resource_id(model: GoldModel, row: dict[str, Any]) -> str:
    """``lakehouse.gold.<model>.<key values>``: the resource of the event a row sends."""
    return ".".join(["lakehouse.gold", model.spec.name, *(_text(row[k]) for k in model.spec.keys)])


def event_id(model: GoldModel, row: dict[str, Any]) -> uuid.UUID:
    """The row's event id: the same table and key give the same id (the server stores it once)."""
    return uuid.uuid5(uuid.NAMESPACE_URL, resource_id(model, row))


def events(model: GoldModel, rows: pa.Table) -> list[dict[str, Any]]:
    """The keyword arguments of ``emit_event`` for each of ``rows`` (the rows a commit inserted)."""
    assert model.event is not None
    table = model.spec.qualified_name
    out = []
    for row in rows.to_pylist():  # one event per inserted row: a few, never a table's worth
        resource = resource_id(model, row)
        named_by = [model.event_resource] if model.event_resource else model.spec.keys
        name = " ".join(_text(row[c]) for c in named_by)
        out.append({
            "event": model.event,
            "id": event_id(model, row),
            "resource": {"prefect.resource.id": resource, "prefect.resource.name": name},
            "related": [{"prefect.resource.id": f"lakehouse.table.{table}", "prefect.resource.role": "table",
                         "prefect.resource.name": table}],
            "payload": {"table": table, **{k: _json(v) for k, v in row.items()}},
        })
    return out


@task(name="gold-events", task_run_name="events gold.{model.spec.name}", timeout_seconds=600, cache_policy=NO_CACHE, **RETRY)
@engine_errors
def emit_gold_events(settings: Settings, model: GoldModel, result: gold.GoldResult) -> int:
    """Send the model's declared event for each row its commit ``result`` inserted; how many were sent."""
    if model.event is None or result.version is None:
        return 0
    sent = events(model, gold.inserted(settings, model, result.version))
    for kwargs in sent:
        emit_event(**kwargs)
    if sent:
        get_run_logger().info("%s: %d %s event(s) for the rows version %d inserted", result.table, len(sent),
                              model.event, result.version)
    return len(sent)
