"""Remote sources (``s3://``, ``gs://``, ``hf://``, ``https://``: any fsspec protocol), mirrored into
the workspace before a run reads them.

``mirror(uri)`` is the one function that resolves a remote URI. It lists the files the URI names (a
file; a folder: every file under it; a glob), copies each into
``$DATAPLAN_HOME/cache/remote/<listing>/`` keeping their paths below the URI's fixed part, and
returns the local path that names the same files: the copied file, the folder, or the glob re-rooted
there. ``<listing>`` is a hash of the URI and of every listed file's path, size and version tag
(ETag, mtime, checksum: whatever the filesystem reports), so an unchanged listing reuses its
copies and a changed one is copied afresh; each copy is written under a temporary name and renamed,
so a killed copy is never taken for a finished one. From then on the run reads, hashes and replays
the local copies like any local source (the manifest records their sha256).

Nothing is fetched unless a recipe or ``--data`` names a remote URI. The protocol's filesystem
package (``s3fs``, ``gcsfs``, ``huggingface_hub``, ``aiohttp`` for http) is the user's to install:
a missing one is a ``RemoteError`` that names it. ``hf://`` also needs ``HF_HUB_OFFLINE=0`` (dataplan
sets it to 1 unless you do).
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import posixpath
import re
import uuid
from pathlib import Path

from operators.core.env import workspace

log = logging.getLogger(__name__)

_MAGIC = re.compile(r"[*?\[]")
_VERSION_KEYS = ("etag", "mtime", "last_modified", "lastmodified", "checksum", "md5", "sha256", "blob_id", "version_id")
"""Keys of an fsspec ``info()`` that identify a file's version, by protocol; all of them found are used."""


PACKAGES = {"s3": "s3fs", "gs": "gcsfs", "gcs": "gcsfs", "az": "adlfs", "abfs": "adlfs", "hf": "huggingface_hub"}
"""The package behind each protocol's fsspec filesystem, where it is not fsspec itself."""


class RemoteError(ValueError):
    """A remote URI that cannot be listed or copied: the message names it and the fix."""


@functools.cache
def mirror(uri: str) -> str:
    """The local path (file, folder or glob) naming the copies of what ``uri`` names (once per process)."""
    fs, path, pattern = _open(uri)
    root = path.rstrip("/")
    remote = _listing(fs, uri, root, pattern, folder=path.endswith("/"))
    tags = [(rel, _version(fs.info(remote_path))) for rel, remote_path in remote]
    key = hashlib.sha256(json.dumps([uri, tags], sort_keys=True, default=str).encode()).hexdigest()[:16]
    local_root = workspace() / "cache" / "remote" / key
    missing = [(rel, remote_path) for rel, remote_path in remote if not (local_root / rel).is_file()]
    if missing:
        log.warning("fetching %d of %d file(s) of %s into %s", len(missing), len(remote), uri, local_root)
    for rel, remote_path in missing:
        _copy(fs, uri, remote_path, local_root / rel)
    if pattern:
        return str(local_root / pattern)
    only_file = len(remote) == 1 and remote[0][0] == posixpath.basename(root)
    return str(local_root / remote[0][0]) if only_file else str(local_root)


def _open(uri: str):
    """(filesystem, fixed part of the path, glob below it or "")."""
    import fsspec

    try:
        fs, path = fsspec.core.url_to_fs(uri)
    except ImportError as err:
        package = PACKAGES.get(_scheme(uri), "the package named here")
        raise RemoteError(
            f"{uri!r}: reading {_scheme(uri)}:// needs the {package} package, which is not installed ({err}); "
            f"install it into dataplan's environment (`.venv/bin/pip install {package}`), or copy the files to a "
            "local folder"
        ) from None
    except ValueError as err:
        raise RemoteError(f"{uri!r}: {err}; fsspec knows no such protocol") from None
    m = _MAGIC.search(path)
    if not m:
        return fs, path, ""
    root = path[: m.start()].rsplit("/", 1)[0]
    return fs, root, path[len(root) + 1 :]


def _listing(fs, uri: str, root: str, pattern: str, folder: bool) -> list[tuple[str, str]]:
    """(path relative to the folder, remote path) of every file ``uri`` names, sorted; ``folder``:
    the URI ends with ``/`` (over http the only way to tell a folder's index page from a file)."""
    try:
        if pattern:
            paths = [p for p in fs.glob(f"{root}/{pattern}") if fs.isfile(p)]
        elif folder or (fs.isdir(root) and not fs.isfile(root)):
            folder, paths = True, fs.find(root)
        else:
            paths = [root] if fs.isfile(root) else []
    except (OSError, ValueError) as err:
        raise RemoteError(
            f"{uri!r}: cannot list it ({type(err).__name__}: {err}); check the URI and credentials"
        ) from None
    if not paths:
        raise RemoteError(f"{uri!r} matches no file; check the URI{_offline_hint(uri)}")
    base = root if (pattern or folder) else posixpath.dirname(root)
    rel = [posixpath.relpath(_strip(fs, p), _strip(fs, base)) for p in paths]
    hidden = [r for r in rel if any(part.startswith(".") for part in r.split("/"))]
    return sorted((r, p) for r, p in zip(rel, paths, strict=True) if r not in hidden)


def _strip(fs, path: str) -> str:
    return fs._strip_protocol(path).rstrip("/")


def _version(info: dict) -> dict:
    found = {k.lower(): v for k, v in info.items() if k.lower() in _VERSION_KEYS}
    return {"size": info.get("size"), **found}


def _copy(fs, uri: str, path: str, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex}.part")
    try:
        fs.get_file(path, str(tmp))
        os.replace(tmp, target)
    except OSError as err:
        raise RemoteError(f"{uri!r}: cannot copy {path} ({type(err).__name__}: {err})") from None
    finally:
        tmp.unlink(missing_ok=True)


def _offline_hint(uri: str) -> str:
    if _scheme(uri) == "hf" and os.environ.get("HF_HUB_OFFLINE") == "1":
        return " (HF_HUB_OFFLINE=1, dataplan's default, keeps the Hub unreachable: set HF_HUB_OFFLINE=0)"
    return ""


def _scheme(uri: str) -> str:
    return uri.split("://", 1)[0].lower()
