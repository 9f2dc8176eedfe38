"""One Ray session per process: local by default, or a cluster via ``--ray-address``/``RAY_ADDRESS``."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator

from operators.core.env import apply_offline_defaults
from operators.core.ray_reaper import watch


def ensure_ray(address: str | None = None, num_cpus: int | None = None) -> bool:
    """Start (or join) Ray unless this process already has a session; True when this call started it."""
    apply_offline_defaults()
    import ray

    if ray.is_initialized():
        return False
    address = address or os.environ.get("RAY_ADDRESS")
    kwargs: dict = {"logging_level": logging.WARNING, "log_to_driver": False, "include_dashboard": False}
    if address and address != "local":
        ray.init(address=address, **kwargs)
    else:
        cpus = num_cpus or int(os.environ.get("DATAPLAN_NUM_CPUS", 0)) or os.cpu_count() or 1
        ray.init(address="local", num_cpus=cpus, object_store_memory=_object_store_bytes(), **kwargs)
        watch(os.getpid())  # the local cluster dies with this process, however it ends
    _configure_ray_data()
    return True


@contextlib.contextmanager
def ray_session(address: str | None = None, num_cpus: int | None = None) -> Iterator[None]:
    """Ray for the duration of a block; shuts it down afterwards only if this block started it."""
    import ray

    started = ensure_ray(address, num_cpus)
    try:
        yield
    finally:
        if started:
            ray.shutdown()


def _object_store_bytes() -> int:
    return int(os.environ.get("DATAPLAN_OBJECT_STORE_MB", 1536)) << 20


BLOCK_BYTES = 8 << 20
"""Ray Data's target block size here (its default is 128 MiB): a block becomes one batch of Python
strings in an operator, several times its Arrow size, so this bounds what a task holds at once."""


def _configure_ray_data() -> None:
    """Blocks of at most ``BLOCK_BYTES``; no progress bars or plan printing from Ray Data (our
    commands show their own progress), and two one-time warnings spent before they print:
    "Progress bars disabled" (we disabled them) and "the cluster currently does not have any
    available CPUs" (our executor runs one dataset at a time on this session's CPUs; the check
    reads them while the previous stage's workers are still being released, and the dataset runs)."""
    from ray.data import DataContext
    from ray.util.debug import log_once

    ctx = DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.print_on_execution_start = False
    ctx.target_max_block_size = BLOCK_BYTES
    logging.getLogger("ray.data").setLevel(logging.WARNING)
    for key in ("ray_data_progress_manager_disabled", "cpu_warning"):
        log_once(key)
