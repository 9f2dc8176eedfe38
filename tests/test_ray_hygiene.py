"""A driver's local Ray cluster dies with it: after ``kill -9`` of the driver, none of the Ray
processes it started (GCS, raylet, agents, workers) is left a few seconds later."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parent.parent
DRIVER = "from operators import ensure_ray; ensure_ray(num_cpus=1); print('ready', flush=True); input()"


def test_kill_9_of_the_driver_leaves_no_ray_process() -> None:
    env = {**os.environ, "RAY_AUTH_MODE": "disabled"}
    proc = subprocess.Popen(
        [sys.executable, "-c", DRIVER], cwd=REPO, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout.readline().strip() == "ready"
        ray = [p for p in psutil.Process(proc.pid).children(recursive=True) if "ray" in " ".join(p.cmdline())]
        names = {p.name() for p in ray}
        assert {"gcs_server", "raylet"} <= names and any(n.startswith("ray::") for n in names)
        time.sleep(1.5)  # the watcher has listed them (it polls every 0.5 s)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        deadline = time.monotonic() + 8
        while time.monotonic() < deadline and any(_alive(p) for p in ray):
            time.sleep(0.5)
        assert not [p for p in ray if _alive(p)], [p.name() for p in ray if _alive(p)]
    finally:
        if proc.poll() is None:
            proc.kill()


def _alive(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False
