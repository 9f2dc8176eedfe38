"""Content-addressed cache of executor stages.

A stage's key chains its parent's key with the operator name, its code version and the params the
stage depends on, so a key transitively covers (input file hashes, recipe prefix, code version).
Each entry is a folder of Parquet parts plus ``stats.json``, written into a scratch folder
(``tmp/<host>-<pid>-<uuid>``) and moved into place by one atomic rename, so an interrupted run never
leaves a half-written entry that looks complete. A committed entry is never replaced or changed
while a run may read it: when two processes compute the same stage, the first rename wins and the
second deletes its copy; ``dataplan cache gc`` removes entries only while no run holds the cache.
Scratch folders are deleted when the run ends, whatever the outcome, and those a killed process
left behind are deleted by the next process that opens the cache.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import inspect
import json
import os
import shutil
import socket
import uuid
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from operators.core.env import workspace
from operators.core.recipe import canonical_hash

EXECUTOR_VERSION = "1"
ENGINE = "operators.core."
"""Modules whose edits do not invalidate cached stages (bump ``EXECUTOR_VERSION`` when they must)."""


class StageStats(BaseModel):
    """What one stage did: counts in/out, drops by reason and by source, time, kept-docs hash."""

    docs_in: int
    docs_out: int
    dropped: dict[str, int] = Field(default_factory=dict)
    dropped_by_source: dict[str, int] = Field(default_factory=dict)
    kept_by_source: dict[str, int] = Field(default_factory=dict)
    seconds: float = 0.0
    kept_sha256: str = ""


def stage_key(parent: str, **parts: Any) -> str:
    return canonical_hash({"parent": parent, "executor": EXECUTOR_VERSION, **parts})


@cache
def code_version(cls: type) -> str:
    """The operator's declared version plus a hash of its module's source and of the ``operators``
    helper modules it imports names from (e.g. shared text statistics; the engine, ``operators.core``,
    excepted): editing an operator's code invalidates its stages, editing the engine does not."""
    module = inspect.getmodule(cls)
    modules = [module, *_helper_modules(module)]
    h = hashlib.sha256()
    for mod in modules:
        try:
            h.update(inspect.getsource(mod).encode())  # type: ignore[arg-type]
        except (OSError, TypeError):
            continue
    return f"{getattr(cls, 'version', '0')}-{h.hexdigest()[:12]}"


def _helper_modules(module: Any) -> list[Any]:
    """The ``operators.*`` modules outside the engine (other than ``module``) that ``module``'s
    global names come from, sorted by name."""
    found = {}
    for value in vars(module).values() if module is not None else ():
        source = value if inspect.ismodule(value) else inspect.getmodule(value)
        name = getattr(source, "__name__", "")
        if name.startswith("operators.") and not name.startswith(ENGINE) and name != module.__name__:
            found[name] = source
    return [found[k] for k in sorted(found)]


SCRATCH = "tmp"
"""The cache's folder of scratch folders (stage keys live in two-hex-digit folders beside it)."""
RUNS = "runs"
"""The cache's record of run folders (one small file each), which ``cache gc`` keeps stages for."""


class CacheBusyError(RuntimeError):
    """The stage cache is held by a running command (``cache gc`` must wait for it)."""


class StageCache:
    """Committed stages by key, scratch folders for stages being written, and the runs that used them."""

    def __init__(self, root: Path | None = None, enabled: bool = True, sweep: bool = True) -> None:
        """Open the cache (``<workspace>/cache/stages`` by default); unless ``sweep`` is False, first
        delete the scratch folders that killed processes left behind."""
        self.root = (root or workspace() / "cache" / "stages").resolve()
        self.enabled = enabled
        self.root.mkdir(parents=True, exist_ok=True)
        self._scratch: list[Path] = []
        for path in stale_scratch(self.root) if sweep else ():
            shutil.rmtree(path, ignore_errors=True)

    def path(self, key: str) -> Path:
        return self.root / key[:2] / key

    def lookup(self, key: str) -> StageStats | None:
        stats = self.path(key) / "stats.json"
        if self.enabled and stats.is_file():
            return StageStats.model_validate_json(stats.read_text())
        return None

    def scratch(self) -> Path:
        """A new scratch folder named after this process, deleted by ``release_scratch``."""
        path = self.root / SCRATCH / f"{_HOST}-{os.getpid()}-{uuid.uuid4().hex}"
        path.mkdir(parents=True)
        self._scratch.append(path)
        return path

    def release_scratch(self) -> None:
        """Delete every scratch folder this cache handed out that was not committed."""
        for path in self._scratch:
            shutil.rmtree(path, ignore_errors=True)
        self._scratch.clear()

    def commit(self, key: str, tmp: Path, stats: StageStats) -> Path:
        """Move the complete stage in ``tmp`` into the cache by one rename; returns the folder to read.

        An entry already there (another process finished the same stage first) is never replaced, as
        a reader may hold it. With the cache enabled that entry is read and ``tmp`` is deleted; with it
        disabled (``--no-cache``, replay) this run reads its own ``tmp`` until ``release_scratch``."""
        (tmp / "stats.json").write_text(json.dumps(stats.model_dump(), indent=1))
        final = self.path(key)
        final.parent.mkdir(parents=True, exist_ok=True)
        try:
            tmp.rename(final)  # a directory renamed onto a non-empty one fails instead of replacing it
        except OSError as err:
            if err.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                raise
            if not self.enabled:
                return tmp
            shutil.rmtree(tmp, ignore_errors=True)
        return final

    @contextlib.contextmanager
    def in_use(self) -> Iterator[None]:
        """Hold the cache shared for a run: ``cache gc`` is refused until the block ends."""
        with (self.root / ".lock").open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_SH)
            yield

    @contextlib.contextmanager
    def exclusive(self) -> Iterator[None]:
        """Hold the cache alone (for ``cache gc``); ``CacheBusyError`` while a run holds it."""
        with (self.root / ".lock").open("a") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError as err:
                raise CacheBusyError(
                    f"the stage cache {self.root} is in use by a running command; run `dataplan cache gc` after it ends"
                ) from err
            yield

    def record_run(self, out: Path) -> None:
        """Remember a run folder, so that ``cache gc`` keeps the stages its manifest names."""
        folder = str(Path(out).resolve())
        record = self.root / RUNS / hashlib.sha256(folder.encode()).hexdigest()[:24]
        record.parent.mkdir(exist_ok=True)
        record.write_text(folder)


_HOST = socket.gethostname().replace("-", "_")


def stale_scratch(root: Path) -> list[Path]:
    """The scratch folders whose owner process is gone (killed runs), and those of versions that
    did not name their owner. Folders of processes on another host are never stale: their
    liveness cannot be checked from here."""
    stale = []
    for path in sorted((root / SCRATCH).glob("*")):
        host, _, pid = path.name.rpartition("-")[0].rpartition("-")
        if not (host and pid.isdigit()) or (host == _HOST and not _alive(int(pid))):
            stale.append(path)
    return stale


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def parquet_parts(folder: Path) -> list[str]:
    """The Parquet part files of a stage folder (``stats.json`` beside them is not data)."""
    return sorted(str(p) for p in Path(folder).glob("*.parquet"))


def stage_bytes(folder: Path) -> int:
    """Parquet bytes on disk of a stage's parts."""
    return sum(os.path.getsize(p) for p in parquet_parts(folder))


SCAN_ROWS = 4096
"""Rows per batch where the driver scans a stage's text (pyarrow's default, 131,072, is ~0.5 GB of
web pages)."""


def scan_stage(folder: Path, columns: list[str], filter: Any = None) -> Iterator[Any]:
    """A stage's rows as record batches of ``SCAN_ROWS``, read ahead by one file and two batches
    at most (pyarrow's defaults, 4 files and 16 batches, held over a GB here)."""
    return stage_dataset(folder).to_batches(
        columns=columns, filter=filter, batch_size=SCAN_ROWS, batch_readahead=2, fragment_readahead=1
    )


def stage_dataset(folder: Path):
    """A pyarrow dataset over a stage folder's parts."""
    import pyarrow.dataset as pads

    return pads.dataset(parquet_parts(folder), format="parquet")
