"""The lock files agree with pyproject.toml's pins (`make lock` rewrites them after a change)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PIN = re.compile(r"^([A-Za-z0-9_.\-]+)(?:\[[^\]]*\])?==([^\s;]+)")


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _locked(path: Path) -> dict[str, str]:
    pins = {}
    for line in path.read_text().splitlines():
        if m := PIN.match(line):
            pins[_norm(m.group(1))] = m.group(2)
    return pins


SELF = re.compile(r"^lakehouse\[([^\]]*)\]$")
"""An extra that includes others (``lakehouse[demo,dask]`` in ``dev``)."""


def _declared(*extras: str) -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requirements = list(project["dependencies"])
    todo, done = list(extras), set()
    while todo:
        extra = todo.pop()
        if extra in done:
            continue
        done.add(extra)
        for requirement in project["optional-dependencies"][extra]:
            if m := SELF.match(requirement.strip()):
                todo += [e.strip() for e in m.group(1).split(",")]
            else:
                requirements.append(requirement)
    pins = {}
    for requirement in requirements:
        m = PIN.match(requirement.strip())
        assert m, f"{requirement!r} in pyproject.toml is not pinned with =="
        pins[_norm(m.group(1))] = m.group(2)
    return pins


@pytest.mark.parametrize(("lock", "extras"), [("dev.lock", ("dev",)), ("bench.lock", ("dev", "bench"))])
def test_every_pin_of_pyproject_is_the_locked_version(lock: str, extras: tuple[str, ...]) -> None:
    locked = _locked(ROOT / "requirements" / lock)
    assert len(locked) > 100  # the whole tree, not only the direct dependencies
    declared = _declared(*extras)
    wrong = {name: (version, locked.get(name)) for name, version in declared.items() if locked.get(name) != version}
    assert wrong == {}, f"pyproject.toml and requirements/{lock} disagree (run `make lock`): {wrong}"
