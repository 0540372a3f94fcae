"""Screenshots of the Prefect UI showing a completed micro-batch run and its artifacts.

    python -m deployments.screenshot [--out screenshots]

Installs Chromium from Debian's packages when it is missing (``apt-get install chromium``,
as root), starts the local stack of ``lakehouse serve`` in a temporary folder on free ports,
waits for the first micro-batch to complete, and takes headless Chromium screenshots of
the flow run page and of its artifacts, so a person can see what a user sees. The stack is
stopped afterwards. Prints the paths of the PNG files.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import tempfile
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

from deployments.stack import start, trigger, window_start
from lakehouse.dev.moto_server import free_port


def chromium() -> str:
    """The Chromium binary, installed from Debian's packages if it is not there yet."""
    for name in ("chromium", "chromium-browser"):
        if found := shutil.which(name):
            return found
    print("installing chromium (apt-get) …", flush=True)
    subprocess.run(["apt-get", "update", "-qq"], check=True)
    subprocess.run(["apt-get", "install", "-y", "-qq", "chromium"], check=True,
                   env={"DEBIAN_FRONTEND": "noninteractive", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"})
    found = shutil.which("chromium")
    if not found:
        raise SystemExit("chromium is not on PATH after apt-get install chromium")
    return found


def _api(url: str, body: dict | None = None) -> object:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, headers={"content-type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as resp:
        return json.load(resp)


def completed_run(api: str, timeout: float = 300.0) -> dict:
    """The first completed micro-batch run (named after its window, ``shop …``)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runs = _api(f"{api}/flow_runs/filter", {"flow_runs": {"state": {"type": {"any_": ["COMPLETED"]}}}, "limit": 10})
        done = [r for r in runs if r["name"].startswith("shop ")]  # type: ignore[union-attr]
        if done:
            return done[0]
        time.sleep(3)
    raise SystemExit("no micro-batch completed in time; see the logs in the state folder")


def screenshot(browser: str, url: str, out: Path) -> None:
    subprocess.run(
        [browser, "--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
         "--window-size=1600,1100", "--virtual-time-budget=20000", f"--screenshot={out}", url],
        check=True, capture_output=True, timeout=120,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="screenshots", help="folder for the PNG files")
    args = parser.parse_args()
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    browser = chromium()

    import os

    from lakehouse.config import Settings
    from lakehouse.declaration import load
    from lakehouse.dev.simulator import simulate
    from lakehouse.storage import open_store

    with tempfile.TemporaryDirectory() as state:
        stack = start(Path(state), ui_port=free_port(), s3_port=free_port(), say=print)
        try:
            os.environ.update({k: stack.env[k] for k in ("LAKEHOUSE_WAREHOUSE", "AWS_ENDPOINT_URL",
                                                          "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION")})
            interval = load().pipeline("shop").interval
            current = window_start(datetime.now(UTC), interval)
            settings = Settings()
            simulate(open_store(settings.landing_root, settings), start=current - interval, windows=1, interval=interval)
            trigger(stack, current)
            run = completed_run(stack.env["PREFECT_API_URL"])
            shots = {
                "flow-run.png": f"{stack.ui}/runs/flow-run/{run['id']}",
                "flow-run-artifacts.png": f"{stack.ui}/runs/flow-run/{run['id']}?tab=Artifacts",
                "runs.png": f"{stack.ui}/runs",
            }
            for name, url in shots.items():
                screenshot(browser, url, out / name)
                print(out / name)
        finally:
            stack.stop()


if __name__ == "__main__":
    main()
