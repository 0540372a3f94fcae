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
    assert expected == {"lakehouse.gate.failed", "lakehouse.run.failed"}
    assert all(a.actions and a.actions[0].type == "send-notification" for a in automations)
