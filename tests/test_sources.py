"""Sources as users give them: a folder, a glob, a mixed folder, remote URIs (over a local HTTP server); errors
name the source."""

from __future__ import annotations

import gzip
import json
import logging
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from operators import RecipeError, recipe_from_dict, run_recipe
from operators.profiling.profile import profile_source
from operators.profiling.profile_sample import sample_source

CODE, LEGAL, BOOKS = "code_python_thealgorithms.jsonl", "legal_spdx_license_texts.jsonl", "books_tinyshakespeare.jsonl"
N_CODE, N_LEGAL = 643, 460


def _jsonl_folder(shared: Path, folder: Path) -> Path:
    """code as .jsonl, legal as .jsonl.gz: one format, two extensions."""
    folder.mkdir()
    shutil.copy(shared / "domains" / CODE, folder / CODE)
    (folder / f"{LEGAL}.gz").write_bytes(gzip.compress((shared / "domains" / LEGAL).read_bytes()))
    return folder


def _mixed_folder(shared: Path, folder: Path) -> Path:
    """code as .jsonl, legal as .parquet, two plays as .txt, a README.md no reader reads."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder.mkdir()
    shutil.copy(shared / "domains" / CODE, folder / CODE)
    legal = [json.loads(line) for line in (shared / "domains" / LEGAL).read_text(encoding="utf-8").splitlines()]
    pq.write_table(pa.Table.from_pylist([{"id": r["id"], "text": r["text"]} for r in legal]), folder / "legal.parquet")
    plays = (shared / "domains" / BOOKS).read_text(encoding="utf-8").splitlines()[:2]
    (folder / "plays").mkdir()
    for i, line in enumerate(plays):
        (folder / "plays" / f"act{i}.txt").write_text(json.loads(line)["text"], encoding="utf-8")
    (folder / "README.md").write_text("# what these files are\n", encoding="utf-8")
    return folder


def _recipe(uri: str, **source) -> object:
    return recipe_from_dict(
        {"sources": [{"name": "docs", "uri": uri, **source}], "steps": [{"op": "length_filter"}], "seed": 0}
    )


def test_a_folder_and_a_glob_of_jsonl_are_read_as_jsonl(shared_data: Path, tmp_path: Path) -> None:
    folder = _jsonl_folder(shared_data, tmp_path / "jsonl")
    for uri in (str(folder), str(folder / "*.jsonl*")):
        recipe = _recipe(uri)
        assert recipe.reader_class(recipe.sources[0]).name == "jsonl"
        assert [Path(f).name for f in recipe.input_files()["docs"]] == [CODE, f"{LEGAL}.gz"]
        sample = sample_source(uri, name="docs", sample_docs=10)
        assert (sample.fmt, sample.doc_count, sample.doc_count_method) == ("jsonl", N_CODE + N_LEGAL, "exact")


def test_a_mixed_folder_reads_each_file_by_its_extension_and_warns_about_the_rest(
    shared_data: Path, ray_started: None, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = _mixed_folder(shared_data, tmp_path / "mixed")
    recipe = _recipe(str(folder))
    with caplog.at_level(logging.WARNING, logger="operators.core.recipe"):
        files = recipe.input_files()["docs"]
    assert recipe.reader_class(recipe.sources[0]).name == "auto"
    assert [Path(f).relative_to(folder).as_posix() for f in files] == [
        CODE,
        "legal.parquet",
        "plays/act0.txt",
        "plays/act1.txt",
    ]
    assert caplog.messages == [
        f"source 'docs': skipped 1 file(s) of {folder} (no reader reads their extension): README.md; "
        "a source of their own with `format: text` reads them as text"
    ]
    manifest = run_recipe(recipe, tmp_path / "out", use_cache=False)
    assert manifest.sources["docs"]["input"] == N_CODE + N_LEGAL + 2  # nothing read as the wrong format
    assert manifest.steps[0].dropped == {}  # no malformed_json from a .txt, no unreadable parquet
    profile = profile_source("docs", str(folder), sample_docs=20)
    assert (profile.format, profile.files, profile.doc_count) == ("auto", 4, N_CODE + N_LEGAL + 2)


def test_format_on_a_mixed_folder_reads_only_that_format_and_names_what_it_skips(
    shared_data: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = _mixed_folder(shared_data, tmp_path / "mixed")
    recipe = _recipe(str(folder), format="jsonl")
    with caplog.at_level(logging.WARNING, logger="operators.core.recipe"):
        assert [Path(f).name for f in recipe.input_files()["docs"]] == [CODE]
    assert caplog.messages == [
        f"source 'docs': skipped 4 file(s) of {folder} (not jsonl files): README.md, legal.parquet, plays/act0.txt, "
        "plays/act1.txt; `format: auto` reads each file by its extension"
    ]


@pytest.fixture
def http_folder(shared_data: Path, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A real HTTP server (the standard library's) on localhost, serving ``data/`` with code and
    legal JSONL and ``data/sub/`` with a text file: the URL of ``data`` and the folder."""
    import functools
    import http.server
    import threading

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

    data = tmp_path / "served" / "data"
    (data / "sub").mkdir(parents=True)
    for name in (CODE, LEGAL):
        shutil.copy(shared_data / "domains" / name, data / name)
    (data / "sub" / "notes.txt").write_text("a note\n", encoding="utf-8")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=data.parent))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/data", data
    finally:
        server.shutdown()


def test_a_remote_glob_is_mirrored_once_and_runs_like_the_local_files(
    ray_started: None, http_folder: tuple[str, Path], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from operators.core.digest import sha256_file
    from operators.core.remote_files import mirror

    url, data = http_folder
    remote = _recipe(f"{url}/*.jsonl")
    with caplog.at_level(logging.WARNING, logger="operators.core.remote_files"):
        files = remote.input_files()["docs"]
    assert [Path(f).name for f in files] == [CODE, LEGAL]
    assert [sha256_file(f) for f in files] == [sha256_file(data / CODE), sha256_file(data / LEGAL)]
    assert caplog.messages == [f"fetching 2 of 2 file(s) of {url}/*.jsonl into {Path(files[0]).parent}"]

    local = run_recipe(_recipe(str(data / "*.jsonl")), tmp_path / "local", use_cache=False)
    mirrored = run_recipe(remote, tmp_path / "remote", use_cache=False)
    assert (
        mirrored.sources["docs"]
        == local.sources["docs"]
        == {"input": N_CODE + N_LEGAL, "kept": N_CODE + N_LEGAL, "dropped": 0}
    )
    assert mirrored.output_sha256 == local.output_sha256

    caplog.clear()
    mirror.cache_clear()  # as a new process would: the unchanged listing reuses the copies
    with caplog.at_level(logging.WARNING, logger="operators.core.remote_files"):
        assert _recipe(f"{url}/*.jsonl").input_files()["docs"] == files
    assert caplog.messages == []

    with open(data / LEGAL, "a", encoding="utf-8") as fh:  # a changed file is fetched afresh
        fh.write(json.dumps({"id": "spdx:NEW", "text": "new licence text"}) + "\n")
    mirror.cache_clear()
    changed = _recipe(f"{url}/*.jsonl").input_files()["docs"]
    assert Path(changed[0]).parent != Path(files[0]).parent
    assert sha256_file(changed[1]) == sha256_file(data / LEGAL)


def test_a_remote_folder_and_file(http_folder: tuple[str, Path]) -> None:
    url, _ = http_folder
    folder = _recipe(f"{url}/", format="auto")
    names = [
        Path(f).relative_to(Path(folder.local_path(folder.sources[0]))).as_posix() for f in folder.input_files()["docs"]
    ]
    assert names == [CODE, LEGAL, "sub/notes.txt"]
    one = _recipe(f"{url}/{LEGAL}")
    assert [Path(f).name for f in one.input_files()["docs"]] == [LEGAL]
    assert one.reader_class(one.sources[0]).name == "jsonl"


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        (
            "s3://bucket/crawl/*.warc.gz",
            "sources[docs].uri: 's3://bucket/crawl/*.warc.gz': reading s3:// needs the s3fs package, which is not "
            "installed (Install s3fs to access S3); install it into dataplan's environment (`.venv/bin/pip install "
            "s3fs`), or copy the files to a local folder",
        ),
        (
            "gs://bucket/code/",
            "sources[docs].uri: 'gs://bucket/code/': reading gs:// needs the gcsfs package, which is not installed "
            "(Please install gcsfs to access Google Storage); install it into dataplan's environment (`.venv/bin/pip "
            "install gcsfs`), or copy the files to a local folder",
        ),
        (
            "nope://x/y.jsonl",
            "sources[docs].uri: 'nope://x/y.jsonl': Protocol not known: nope; fsspec knows no such protocol",
        ),
    ],
)
def test_remote_uris_without_their_filesystem_are_refused_naming_the_package(uri: str, message: str) -> None:
    with pytest.raises(RecipeError) as err:
        _recipe(uri)
    assert str(err.value) == message


def test_errors_name_the_source_as_the_user_named_it(tmp_path: Path) -> None:
    with pytest.raises(RecipeError) as err:
        profile_source("legal_docs", str(tmp_path / "none" / "*.jsonl"), sample_docs=5)
    missing = tmp_path / "none" / "*.jsonl"
    assert str(err.value) == (
        f"sources[legal_docs].uri: '{missing}' (resolved to {missing}) matches no readable file; check the path or glob"
    )
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "a.csv").write_text("x,y\n")
    (tmp_path / "notes" / "b.md").write_text("# b\n")
    with pytest.raises(RecipeError) as err:
        profile_source("notes", str(tmp_path / "notes"), sample_docs=5)
    assert str(err.value) == (
        f"sources[notes].format: cannot infer a reader from '{tmp_path / 'notes'}': no file has a known extension "
        "(found .csv x1, .md x1); set `format:` to one of ['auto', 'jsonl', 'parquet', 'text', 'warc']"
    )


def test_data_arguments_keep_remote_uris_and_resolve_folders(tmp_path: Path, monkeypatch) -> None:
    from agent.cli.agent_runs import parse_sources

    monkeypatch.chdir(tmp_path)
    (tmp_path / "code").mkdir()
    assert parse_sources(["code", "web=s3://bucket/crawl/", "docs=data/*.jsonl*"]) == {
        "code": str(tmp_path / "code"),
        "web": "s3://bucket/crawl/",
        "docs": str(tmp_path / "data" / "*.jsonl*"),
    }
