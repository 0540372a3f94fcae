"""The e2e tests' one `lakehouse serve` stack (see serving.py), and the demo: processes of
their own that tests/conftest.py starts as the session begins (``_head_start``); the test
that checks one waits only for what is left."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator

import pytest

from tests.conftest import Background
from tests.e2e.serving import Served


@pytest.fixture(scope="session")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """The local stack of `lakehouse serve`, started by the first test that calls ``ensure_running``."""
    stack = Served(tmp_path_factory.mktemp("serve") / "stack")
    yield stack
    if stack.running():  # no test stopped it: Ctrl-C, so that it stops its parts too
        stack.stop()


@pytest.fixture(scope="session")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Background]:
    """`lakehouse demo --windows 2` with nothing started by hand: no warehouse, no Prefect API
    (it starts its own moto S3 and a temporary Prefect server), a Prefect home of its own."""
    folder = tmp_path_factory.mktemp("demo")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LAKEHOUSE_", "AWS_", "PREFECT_API"))}
    env["PREFECT_HOME"] = str(folder / "prefect-home")
    command = Background([sys.executable, "-m", "flows.cli", "demo", "--windows", "2"], env, folder)
    yield command
    command.kill()
