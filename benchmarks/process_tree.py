"""Run a command and sample the memory of its whole process tree (Ray's GCS, raylet and workers,
datatrove's workers): the peak of the summed RSS, every ``interval`` seconds."""

from __future__ import annotations

import subprocess
import threading
import time
from pathlib import Path

import psutil


def run_measured(cmd: list[str], env: dict[str, str], log: Path, interval: float = 0.2) -> dict:
    """Run ``cmd`` (stdout and stderr to ``log``); return its exit code, wall seconds and the peak
    of the RSS summed over it and all its descendants, in MiB."""
    with open(log, "w") as fh:
        proc = subprocess.Popen(cmd, env=env, stdout=fh, stderr=subprocess.STDOUT)
    peak = [0]

    def sample() -> None:
        root = psutil.Process(proc.pid)
        while proc.poll() is None:
            try:
                tree = [root, *root.children(recursive=True)]
                peak[0] = max(peak[0], sum(_rss(p) for p in tree))
            except psutil.Error:
                pass
            time.sleep(interval)

    thread = threading.Thread(target=sample, daemon=True)
    start = time.perf_counter()
    thread.start()
    code = proc.wait()
    wall = time.perf_counter() - start
    thread.join()
    return {"code": code, "wall_s": wall, "peak_rss_mb": peak[0] / 2**20}


def _rss(proc: psutil.Process) -> int:
    try:
        return proc.memory_info().rss
    except psutil.Error:  # exited between listing and reading
        return 0
