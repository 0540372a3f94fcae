"""The local stack behind ``lakehouse serve``: moto S3, a Prefect server with its UI, the
deployments, a process worker and the simulator, started in order and stopped cleanly.

Persistence: the warehouse and the landing area live in moto's S3 (so the S3 code paths
run on a laptop too). moto keeps its state in memory, so the stack **snapshots** the bucket
into ``<state dir>/s3/`` when it stops (Ctrl-C, after the worker has stopped, so no write is
in flight) and restores it when it starts. Prefect's own database lives in ``<state
dir>/prefect``. A stack that is killed (``kill -9``, a crash) loses the S3 changes since it
started; Prefect's history stays.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from lakehouse.dev.moto_server import (
    MotoServer,
    client_of,
    start_moto_server,
)
from lakehouse.storage import S3Client
from lakehouse.window import window_ending_at

ROOT = Path(__file__).resolve().parents[1]
"""The project directory: where ``prefect.yaml`` is and where the worker's runs start."""
BUCKET = "lakehouse"
DEPLOYMENT = "micro-batch/shop-micro-batch"
POOL = "local"


def _client(endpoint: str) -> S3Client:
    return client_of(endpoint)


def snapshot(endpoint: str, bucket: str, folder: Path) -> int:
    """Copy every object of ``bucket`` into ``folder`` (replacing what was there); returns the count."""
    client = _client(endpoint)
    fresh = folder.with_name(folder.name + ".new")
    if fresh.exists():
        _remove(fresh)
    count = 0
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for obj in page.get("Contents", []):
            target = fresh / obj["Key"]
            target.parent.mkdir(parents=True, exist_ok=True)
            client.download_file(bucket, obj["Key"], str(target))
            count += 1
    fresh.mkdir(parents=True, exist_ok=True)
    if folder.exists():
        _remove(folder)
    fresh.rename(folder)  # the old snapshot is replaced only by a complete new one
    return count


def restore(endpoint: str, bucket: str, folder: Path) -> int:
    """Upload a snapshot made by :func:`snapshot` into ``bucket``; returns the count."""
    if not folder.is_dir():
        return 0
    client = _client(endpoint)
    count = 0
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        client.upload_file(str(path), bucket, path.relative_to(folder).as_posix())
        count += 1
    return count


def _remove(folder: Path) -> None:
    import shutil

    shutil.rmtree(folder)


@dataclass
class Stack:
    """The running parts, stopped in reverse order by :meth:`stop`."""

    state_dir: Path
    env: dict[str, str]
    moto: MotoServer | None = None
    processes: list[tuple[str, subprocess.Popen[bytes]]] = field(default_factory=list)
    say: Callable[[str], None] = print
    restored: bool = False
    saved: bool = False

    @property
    def ui(self) -> str:
        return self.env["PREFECT_UI_URL"]

    def spawn(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        log = open(self.state_dir / f"{name}.log", "ab")  # noqa: SIM115 (the process owns it)
        proc = subprocess.Popen(args, env=self.env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)  # Ctrl-C reaches us only: we stop them in order
        self.processes.append((name, proc))
        return proc

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        out = subprocess.run(args, env=self.env, cwd=ROOT, capture_output=True, text=True, timeout=300)
        if check and out.returncode != 0:
            raise RuntimeError(f"{' '.join(args[:4])} … failed:\n{out.stdout[-1500:]}{out.stderr[-1500:]}")
        return out

    def stop(self) -> None:
        """Stop the worker, save the bucket, stop the Prefect server, then moto."""
        for name, proc in reversed(self.processes):
            if name == "prefect server":
                self._save()
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            self.say(f"stopped {name}")
        self._save()
        if self.moto is not None:
            self.moto.stop()
            self.say("stopped moto S3")

    def _save(self) -> None:
        """Snapshot the bucket once, and only if it was restored first (never a partial state)."""
        if self.moto is None or not self.restored or self.saved:
            return
        self.saved = True
        try:
            count = snapshot(self.moto.endpoint_url, BUCKET, self.state_dir / "s3")
        except Exception as exc:  # noqa: BLE001 (report, keep the previous snapshot, go on stopping)
            self.say(f"could not save s3://{BUCKET} (the previous snapshot is kept): {exc}")
            return
        self.say(f"saved {count} objects of s3://{BUCKET} to {self.state_dir / 's3'}")

    def wait_for_api(self, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        server = next(p for n, p in self.processes if n == "prefect server")
        while True:
            try:
                with urllib.request.urlopen(f"{self.env['PREFECT_API_URL']}/health", timeout=2):
                    return
            except OSError:
                if server.poll() is not None:
                    raise RuntimeError(f"prefect server exited; see {self.state_dir / 'prefect server.log'}") from None
                if time.monotonic() > deadline:
                    raise RuntimeError(f"prefect server did not answer within {timeout:.0f}s") from None
                time.sleep(0.5)


def start(state_dir: Path, *, ui_port: int, s3_port: int | None, say: Callable[[str], None]) -> Stack:
    """Start every part; on any failure, stop what started and raise."""
    state_dir = state_dir.resolve()
    state_dir.mkdir(parents=True, exist_ok=True)
    stack = Stack(state_dir, env={}, say=say)
    try:
        stack.moto = start_moto_server(s3_port)
        try:
            stack.moto.create_bucket(BUCKET)
        except Exception as exc:  # noqa: BLE001 (an existing bucket is fine)
            if "BucketAlready" not in str(exc):
                raise
        restored = restore(stack.moto.endpoint_url, BUCKET, state_dir / "s3")
        stack.restored = True
        say(f"moto S3 on {stack.moto.endpoint_url}" + (f" (restored {restored} objects)" if restored else ""))
        api = f"http://127.0.0.1:{ui_port}/api"
        stack.env = {
            **os.environ,
            **stack.moto.env(f"s3://{BUCKET}/warehouse"),
            "PREFECT_HOME": str(state_dir / "prefect"),
            "PREFECT_API_URL": api,
            "PREFECT_UI_URL": f"http://127.0.0.1:{ui_port}",
            "PREFECT_SERVER_API_HOST": "127.0.0.1",
            "PREFECT_SERVER_API_PORT": str(ui_port),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "SODA_CORE_TELEMETRY_ENABLED": "false",
            "LAKEHOUSE_PROJECT_DIR": str(ROOT),
        }
        prefect = str(Path(sys.executable).with_name("prefect"))
        stack.spawn("prefect server", prefect, "server", "start")
        stack.wait_for_api()
        say(f"Prefect server on {api}")
        if stack.run(prefect, "work-pool", "inspect", POOL, check=False).returncode != 0:
            stack.run(prefect, "work-pool", "create", "--type", "process", POOL)
        stack.run(prefect, "--no-prompt", "deploy", "--all")
        say("deployed every deployment of prefect.yaml (prefect --no-prompt deploy --all)")
        stack.spawn("worker", prefect, "worker", "start", "--pool", POOL)
        say(f"worker on pool {POOL!r}; logs in {state_dir}")
        return stack
    except BaseException:
        stack.stop()
        raise


def window_start(now: datetime, interval: timedelta) -> datetime:
    """The start of the window after the last one ended at ``now`` (the grid of :mod:`lakehouse.window`)."""
    return window_ending_at(now, interval).end


def trigger(stack: Stack, at: datetime) -> None:
    """Run the micro-batch deployment now for the window ending at ``at``."""
    prefect = str(Path(sys.executable).with_name("prefect"))
    stack.run(prefect, "deployment", "run", DEPLOYMENT, "--param", f"at={at.isoformat()}")
