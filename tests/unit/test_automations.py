"""The automations the README tells users to create are valid Prefect automations."""

from __future__ import annotations

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def test_the_shipped_automations_validate_and_listen_to_our_events() -> None:
    from prefect.events.schemas.automations import AutomationCore

    data = yaml.safe_load((ROOT / "deployments" / "automations.yaml").read_text())
    automations = [AutomationCore.model_validate(a) for a in data["automations"]]
    expected = {a.trigger.expect.pop() for a in automations}  # type: ignore[union-attr]
    assert expected == {"lakehouse.gate.failed", "lakehouse.run.failed", "lakehouse.stock.low"}
    assert all(a.actions and a.actions[0].type == "send-notification" for a in automations)


def test_the_low_stock_automation_matches_the_event_a_new_alert_row_sends() -> None:
    """The trigger's resource pattern matches what tasks.events builds for a row, and its
    templates name only columns of that row's payload."""
    import re
    from datetime import UTC, datetime

    import pyarrow as pa
    from prefect.events.schemas.automations import AutomationCore
    from prefect.events.schemas.events import Resource

    from lakehouse.dev.shop import SHOP
    from tasks.events import events

    data = yaml.safe_load((ROOT / "deployments" / "automations.yaml").read_text())
    (declared,) = [a for a in data["automations"] if "lakehouse.stock.low" in a["trigger"]["expect"]]
    low = AutomationCore.model_validate(declared)
    model = next(m for m in SHOP.models if m.spec.name == "low_stock_alerts")
    row = pa.Table.from_pylist([{"product_id": "P-007", "crossed_at": datetime(2026, 1, 1, 0, 5, tzinfo=UTC),
                                 "event_id": "E-1", "stock": 8, "stock_before": 12, "reorder_level": 10}],
                               schema=model.spec.arrow_schema())
    (event,) = events(model, row)
    assert event["event"] == model.event
    assert low.trigger.match.matches(Resource.model_validate(event["resource"]))  # type: ignore[union-attr]
    action = declared["actions"][0]
    named = set(re.findall(r"event\.payload\.(\w+)", action["subject"] + action["body"]))
    assert named and named <= set(event["payload"]), named - set(event["payload"])
