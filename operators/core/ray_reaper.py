"""The Ray processes a driver started die with it, even after ``kill -9``.

A local Ray session is a handful of processes (GCS, raylet, dashboard and runtime-env agents, log
monitor, workers). ``ray.shutdown`` stops them on a normal exit; when the driver is killed they
notice by themselves, but the agents take 20-40 s to (about 210 MB meanwhile). ``watch(pid)``
starts a small detached watcher that keeps a list of the driver's Ray descendants and, once the
driver is gone, kills those still running (each checked by its start time, so a reused pid is
never hit). This file runs as a script, with only the standard library and ``psutil`` (a Ray
dependency), so the watcher starts in a fraction of a second.
"""

from __future__ import annotations

import subprocess
import sys
import time

import psutil

POLL_S = 0.5


def watch(driver_pid: int) -> subprocess.Popen:
    """Start the watcher of ``driver_pid`` in its own session (a signal to the driver's process
    group does not reach it)."""
    return subprocess.Popen(
        [sys.executable, __file__, str(driver_pid)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        close_fds=True,
    )


def _is_ray(proc) -> bool:
    try:
        name, cmd = proc.name(), " ".join(proc.cmdline())
    except psutil.Error:
        return False
    return name.startswith("ray::") or name in ("raylet", "gcs_server") or "/site-packages/ray/" in cmd


def _alive(proc) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def reap(driver_pid: int) -> int:
    """Follow ``driver_pid`` until it exits, then kill the Ray processes it left; how many."""
    try:
        driver = psutil.Process(driver_pid)
    except psutil.NoSuchProcess:
        return 0
    known: dict[int, psutil.Process] = {}
    seen: set[int] = set()
    while _alive(driver):
        try:
            children = driver.children(recursive=True)
        except psutil.Error:
            break
        for proc in children:
            if proc.pid not in seen:
                seen.add(proc.pid)
                if _is_ray(proc):
                    known[proc.pid] = proc
        time.sleep(POLL_S)
    killed = 0
    for proc in known.values():
        if _alive(proc):  # is_running compares the start time: a reused pid is another process
            try:
                proc.kill()
                killed += 1
            except psutil.Error:
                pass
    return killed


if __name__ == "__main__":
    reap(int(sys.argv[1]))
