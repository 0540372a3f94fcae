"""Every flow of the project is deployed by prefect.yaml, and every micro-batch deployment
runs on an interval with a concurrency limit of 1."""

from __future__ import annotations

import ast
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def flows_in_code() -> set[str]:
    """``flows/<file>.py:<function>`` of every function decorated with ``@flow``."""
    found = set()
    for path in sorted((ROOT / "flows").glob("*.py")):
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.FunctionDef):
                for deco in node.decorator_list:
                    target = deco.func if isinstance(deco, ast.Call) else deco
                    if isinstance(target, ast.Name) and target.id == "flow":
                        found.add(f"flows/{path.name}:{node.name}")
    return found


def test_every_flow_is_deployed() -> None:
    config = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    deployed = {d["entrypoint"] for d in config["deployments"]}
    assert flows_in_code() == deployed
    assert {"flows/microbatch.py:micro_batch", "flows/backfill.py:backfill", "flows/replay.py:replay_quarantine",
            "flows/maintenance.py:maintenance"} <= deployed


def test_maintenance_runs_daily() -> None:
    config = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    (d,) = [d for d in config["deployments"] if d["entrypoint"] == "flows/maintenance.py:maintenance"]
    (schedule,) = d["schedules"]
    assert schedule.get("interval") == 86400 or len(schedule["cron"].split()) == 5 and schedule["cron"].split()[2:] == ["*", "*", "*"]


def test_micro_batches_run_on_an_interval_one_at_a_time() -> None:
    config = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    for d in config["deployments"]:
        assert d["concurrency_limit"] == {"limit": 1, "collision_strategy": "ENQUEUE"}, d["name"]
        assert d["work_pool"]["name"] == "local"
        if d["entrypoint"].endswith(":micro_batch"):
            (schedule,) = d["schedules"]
            assert 300 <= schedule["interval"] <= 900


def test_the_window_length_has_one_source_the_declaration() -> None:
    """A micro-batch deployment passes no interval of its own (the flow reads the pipeline's), and
    its schedule runs once per declared window: the two cannot disagree unnoticed."""
    from lakehouse.declaration import load

    config = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    for d in config["deployments"]:
        if d["entrypoint"].endswith(":micro_batch"):
            assert "interval" not in (d.get("parameters") or {}), d["name"]
            pipeline = load().pipeline((d.get("parameters") or {}).get("pipeline"))
            (schedule,) = d["schedules"]
            assert schedule["interval"] == pipeline.interval.total_seconds(), d["name"]
