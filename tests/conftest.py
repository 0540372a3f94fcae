"""Session-wide real services: one moto S3 server process and one Prefect API.

Both start once per test session (imports are slow here and Prefect's API takes seconds
to start); each warehouse gets a bucket of its own in the one moto server. moto lists a
bucket by walking every key in it, so a bucket shared by the whole session made every
Delta log listing slower as the session went on; a bucket per warehouse keeps a listing
as cheap as that warehouse is small.

Head starts: three things take most of a minute each and run in processes of their own,
the demo (tests/e2e), the `lakehouse serve` stack (tests/e2e/serving.py) and the session's
in-order warehouse (tests/integration/conftest.py). ``_head_start`` starts those that the
selected tests use as the first test begins, so they come up on the machine's other core
while the tests before them run; the tests that use them then wait only for what is left.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

os.environ.setdefault("SODA_CORE_TELEMETRY_ENABLED", "false")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "90")
os.environ.setdefault("PREFECT_HOME", tempfile.mkdtemp(prefix="lakehouse-prefect-home-"))
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")

import pytest  # noqa: E402

from tests.shop_files import PATH as SHOP_FILES  # noqa: E402

# the tests of the engine on files run the shop's landing-files part (tests/shop_files.py); the
# tests of the whole shop and its siblings name the built-in declaration themselves
os.environ.setdefault("LAKEHOUSE_CONFIG", str(SHOP_FILES))

from lakehouse.dev.moto_server import MotoServer, start_moto_server  # noqa: E402
from tests.e2e.serving import Served  # noqa: E402
from tests.shards import SHARDS  # noqa: E402


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--shard", choices=SHARDS, default=None,
                     help="run only the tests that use the in-order warehouse, or only the others (tests/shards.py)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    shard = config.getoption("--shard")
    if shard is None:
        return
    keep, drop = [], []
    for item in items:
        in_order = "in_order_build" in getattr(item, "fixturenames", ()) or item.get_closest_marker("in_order_shard") is not None
        (keep if in_order == (shard == "in-order") else drop).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


@pytest.fixture(scope="session")
def moto() -> Iterator[MotoServer]:
    """A moto S3 server process for the whole session, reached over HTTP."""
    server = start_moto_server()
    yield server
    server.stop()


def new_warehouse(moto: MotoServer, monkeypatch: pytest.MonkeyPatch, name: str = "lake") -> str:
    """A fresh ``s3://`` warehouse in a bucket of its own, configured through the environment."""
    bucket = f"{name}-{uuid.uuid4().hex[:12]}"
    moto.create_bucket(bucket)
    uri = f"s3://{bucket}/warehouse"
    for key, value in moto.env(uri).items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("LAKEHOUSE_LANDING", raising=False)
    return uri


def environment(moto: MotoServer, base: dict[str, str], bucket: str) -> dict[str, str]:
    """``base`` pointed at the warehouse in ``bucket`` (as :func:`new_warehouse` points this
    process), for a subprocess."""
    env = {**base, **moto.env(f"s3://{bucket}/warehouse")}
    env.pop("LAKEHOUSE_LANDING", None)
    return env


@pytest.fixture(scope="session", autouse=True)
def _flows_in_this_process() -> Iterator[None]:
    """Flows that tests run in this process send no heartbeats, as the ``lakehouse``
    command's do (flows/inprocess.py); the deployment test's worker-run flows keep them."""
    from flows.inprocess import in_this_process

    with in_this_process():
        yield


@pytest.fixture(scope="session")
def prefect_api() -> Iterator[str]:
    """A real Prefect API for the session; its URL is exported for subprocesses too."""
    from prefect.settings import PREFECT_API_URL
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=90):
        url = PREFECT_API_URL.value()
        os.environ["PREFECT_API_URL"] = url
        yield url
        os.environ.pop("PREFECT_API_URL", None)


@pytest.fixture
def warehouse(moto: MotoServer, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh ``s3://`` warehouse in a moto bucket of its own, configured through the environment."""
    return new_warehouse(moto, monkeypatch)


@pytest.fixture
def local_warehouse(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A warehouse in a local folder."""
    uri = str(tmp_path / "warehouse")
    monkeypatch.setenv("LAKEHOUSE_WAREHOUSE", uri)
    monkeypatch.delenv("LAKEHOUSE_LANDING", raising=False)
    return uri


DEMO_API_TOKEN = "tok-demo-41c7-shop-api-never-print"
"""The shop API's token in the session's `lakehouse demo`."""


class Background:
    """A command in a process of its own, started once and waited for later; output to files
    (nobody reads a pipe until the test does)."""

    def __init__(self, argv: list[str], env: dict[str, str], folder: Path) -> None:
        self.argv, self.env, self.folder = argv, env, folder
        self.proc: subprocess.Popen[str] | None = None

    def begin(self) -> None:
        if self.proc is None:
            self.folder.mkdir(parents=True, exist_ok=True)
            with open(self.folder / "stdout", "w") as out, open(self.folder / "stderr", "w") as err:
                self.proc = subprocess.Popen(self.argv, env=self.env, stdout=out, stderr=err, text=True)

    def wait(self, timeout: float) -> subprocess.CompletedProcess[str]:
        """Start it unless it was, and wait for it to end: its exit code and output."""
        self.begin()
        assert self.proc is not None
        self.proc.wait(timeout=timeout)
        return subprocess.CompletedProcess(self.argv, self.proc.returncode,
                                           (self.folder / "stdout").read_text(), (self.folder / "stderr").read_text())

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)


class InOrderBuild(Background):
    """``python -m tests.integration.in_order``: the session's in-order warehouse."""

    def wait(self, timeout: float = 900) -> Any:
        """What the build left (``tests.integration.conftest.Built``), once it has."""
        done = super().wait(timeout)
        assert done.returncode == 0, f"the in-order build failed (exit {done.returncode}):\n{done.stderr[-4000:]}"
        return pickle.loads((self.folder / "built.pickle").read_bytes())


@pytest.fixture(scope="session")
def in_order_build(moto: MotoServer, prefect_api: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[InOrderBuild]:
    """The process that builds the in-order warehouse, started (see ``in_order``)."""
    bucket = f"in-order-{uuid.uuid4().hex[:12]}"
    moto.create_bucket(bucket)
    folder = tmp_path_factory.mktemp("in-order")
    build = InOrderBuild([sys.executable, "-m", "tests.integration.in_order", bucket, str(folder / "built.pickle")],
                         environment(moto, dict(os.environ), bucket), folder)
    build.begin()
    yield build
    build.kill()


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
    env["SHOP_API_TOKEN"] = DEMO_API_TOKEN  # the demo's API requires it (else a random one): no output may hold it
    env["COLUMNS"] = "200"  # the window tables unabridged (a pipe is 80 columns wide to rich)
    command = Background([sys.executable, "-m", "flows.cli", "demo", "--windows", "2"], env, folder)
    yield command
    command.kill()


@pytest.fixture(scope="session", autouse=True)
def _head_start(request: pytest.FixtureRequest) -> None:
    """Start the demo, the serve stack and the in-order build, if the selected tests use them."""
    used = {name for item in request.session.items for name in getattr(item, "fixturenames", ())}
    for name in ("demo", "served"):  # these need nothing of the session
        if name in used:
            request.getfixturevalue(name).begin()
    if "in_order" in used:
        request.getfixturevalue("in_order_build")
