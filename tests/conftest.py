"""Shared fixtures: the shared data folder (skip or fail when absent), one Ray session, a workspace."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from operators import shared_data_dir

REPO = Path(__file__).resolve().parent.parent


def _shared() -> Path:
    path = shared_data_dir()
    if not (path / "MANIFEST.md").is_file():
        reason = f"shared data not found at {path} (set DATAPLAN_SHARED_DATA)"
        if os.environ.get("DATAPLAN_REQUIRE_SHARED") == "1":
            pytest.fail(f"{reason}; DATAPLAN_REQUIRE_SHARED=1 makes this a failure", pytrace=False)
        pytest.skip(reason)
    return path


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` (or ``DATAPLAN_SHARED_DATA``); skips, or fails under CI, when absent."""
    return _shared()


@pytest.fixture(scope="session", autouse=True)
def _workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("dataplan_home")
    os.environ["DATAPLAN_HOME"] = str(home)
    os.environ.setdefault("DATAPLAN_SHARED_DATA", str(shared_data_dir()))
    return home


@pytest.fixture(scope="session")
def ray_started() -> None:
    """One local Ray session for the whole test run (2 CPUs), shut down at the end."""
    from operators import ray_session

    with ray_session(num_cpus=2):
        yield
