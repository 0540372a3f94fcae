"""The e2e tests' one `lakehouse serve` stack (see serving.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e.serving import Served


@pytest.fixture(scope="session")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """The local stack of `lakehouse serve`, started by the first test that calls ``ensure_running``."""
    stack = Served(tmp_path_factory.mktemp("serve") / "stack")
    yield stack
    if stack.running():  # no test stopped it: Ctrl-C, so that it stops its parts too
        stack.stop()
