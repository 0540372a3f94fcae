"""An embedded moto S3 server, run as a separate process and reached over HTTP.

The in-process ``ThreadedMotoServer`` hangs delta-rs calls (STACK.md), so this always
starts ``python -m moto.server`` on a free loopback port: through
:mod:`lakehouse.dev.moto_kinesis`, which makes its Kinesis split and merge shards as AWS does
(the same process serves S3 and Kinesis).
"""

from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from lakehouse.dev.moto_kinesis import CLOCK
from lakehouse.errors import ConfigError, SourceUnavailable

if TYPE_CHECKING:
    from lakehouse.storage import S3Client

ACCESS_KEY = "testing"
SECRET_KEY = "testing"  # moto accepts any credentials; these are not secrets
REGION = "us-east-1"


def free_port() -> int:
    """A free TCP port on the loopback interface."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class MotoServer:
    """A running moto server process; use as a context manager or call :meth:`stop`."""

    port: int
    process: subprocess.Popen[bytes] = field(repr=False)
    clock: Path | None = None
    """The file of its simulated Kinesis clock (``start_moto_server(simulated_clock=True)``)."""

    @property
    def endpoint_url(self) -> str:
        """The server's HTTP endpoint on the loopback interface."""
        return f"http://127.0.0.1:{self.port}"

    def env(self, warehouse: str) -> dict[str, str]:
        """Environment variables that point boto3, delta-rs and the lakehouse here."""
        return {
            "LAKEHOUSE_WAREHOUSE": warehouse,
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            "AWS_REGION": REGION,
        }

    def set_clock(self, at: datetime) -> None:
        """From now on, Kinesis records arrive at about ``at`` (plus the time since this call)."""
        if self.clock is None:
            msg = "this moto server has no simulated clock: start it with start_moto_server(simulated_clock=True)"
            raise ConfigError(msg)
        self.clock.write_text(str((at - datetime.now(UTC)).total_seconds()))

    def create_bucket(self, bucket: str) -> None:
        """Create ``bucket`` in the server."""
        client_of(self.endpoint_url).create_bucket(Bucket=bucket)

    def stop(self) -> None:
        """Stop the server process (and wait for it)."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def __enter__(self) -> MotoServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_moto_server(port: int | None = None, *, timeout: float = 30.0, simulated_clock: bool = False) -> MotoServer:
    """Start ``moto.server`` on ``port`` (a free one by default) and wait until it answers.

    ``simulated_clock``: the arrival times of its Kinesis records follow :meth:`MotoServer.set_clock`.

    moto comes with the ``demo`` extra (``pip install 'lakehouse[demo]'``; ``make install``
    has it): without it this raises :class:`~lakehouse.errors.ConfigError` naming the extra.
    """
    if importlib.util.find_spec("moto") is None:
        msg = "the embedded S3 server needs moto, which is not installed: pip install 'lakehouse[demo]'"
        raise ConfigError(msg)
    port = port or free_port()
    clock = Path(tempfile.mkdtemp(prefix="lakehouse-moto-clock-")) / "offset" if simulated_clock else None
    env = {**os.environ, CLOCK: str(clock)} if clock is not None else None
    process = subprocess.Popen(
        [sys.executable, "-m", "lakehouse.dev.moto_kinesis", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
        start_new_session=True,  # Ctrl-C reaches the owner, which stops the server when it is done with it
    )
    server = MotoServer(port=port, process=process, clock=clock)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            msg = f"moto server exited with status {process.returncode}"
            raise SourceUnavailable(msg)
        try:
            with urllib.request.urlopen(f"{server.endpoint_url}/moto-api/", timeout=1):
                return server
        except OSError:
            time.sleep(0.1)
    server.stop()
    msg = f"moto server did not answer on port {port} within {timeout}s"
    raise SourceUnavailable(msg)


def client_of(endpoint_url: str) -> S3Client:
    """A boto3 S3 client of the moto server at ``endpoint_url`` (:func:`lakehouse.storage.s3_client`)."""
    from pydantic import SecretStr

    from lakehouse.config import Settings
    from lakehouse.storage import s3_client

    return s3_client(Settings(
        aws_endpoint_url=endpoint_url, aws_access_key_id=SecretStr(ACCESS_KEY),
        aws_secret_access_key=SecretStr(SECRET_KEY),
        aws_region=REGION,
    ))
