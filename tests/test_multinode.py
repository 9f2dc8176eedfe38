"""A recipe run and a short search on a two-node Ray cluster give what they give on local Ray."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import yaml
from test_concurrency import _env, _recipe, _space

REPO = Path(__file__).resolve().parent.parent


@contextmanager
def two_node_cluster(home: Path) -> Iterator[str]:
    """The address of a head node plus one more raylet (``tests/ray_cluster.py``)."""
    proc = subprocess.Popen(
        [sys.executable, str(REPO / "tests/ray_cluster.py")],
        cwd=REPO,
        env=_env(home),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        address = proc.stdout.readline().strip()
        assert address, f"the cluster did not start (exit {proc.poll()})"
        yield address
    finally:
        proc.stdin.close()
        proc.wait(timeout=120)


def _cli(home: Path, *args: str) -> dict:
    res = subprocess.run(
        [sys.executable, "-m", "agent.cli", *args, "--json"],
        cwd=REPO,
        env=_env(home),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    return json.loads(res.stdout)


def _nodes(address: str, home: Path) -> list[float]:
    """CPUs of every live node of the cluster, asked by a separate driver."""
    code = f"import json, ray; ray.init(address={address!r}, logging_level='ERROR'); print(json.dumps("
    code += "sorted(n['Resources'].get('CPU', 0) for n in ray.nodes() if n['Alive'])))"
    res = subprocess.run([sys.executable, "-c", code], env=_env(home), capture_output=True, text=True, timeout=120)
    return json.loads(res.stdout.strip().splitlines()[-1])


def test_run_and_search_on_two_nodes_match_local_ray(shared_data: Path, tmp_path: Path) -> None:
    recipe = _recipe(shared_data, tmp_path)
    (tmp_path / "space.yaml").write_text(yaml.safe_dump(_space(recipe)))
    search = ["search", str(tmp_path / "space.yaml"), "--trials", "2", "--no-finalize", "--pruner", "none"]

    local_run = _cli(tmp_path / "local", "run", str(recipe), "--out", str(tmp_path / "local_out"))
    local_search = _cli(tmp_path / "local", *search, "--dir", str(tmp_path / "local_search"))
    with two_node_cluster(tmp_path / "cluster") as address:
        assert _nodes(address, tmp_path / "cluster") == [1.0, 1.0]
        at = ["--ray-address", address]
        cluster_run = _cli(tmp_path / "cluster", "run", str(recipe), "--out", str(tmp_path / "cluster_out"), *at)
        cluster_search = _cli(tmp_path / "cluster", *search, "--dir", str(tmp_path / "cluster_search"), *at)

    assert (local_run["input_docs"], local_run["output_docs"]) == (427, 255)
    assert cluster_run["output_sha256"] == local_run["output_sha256"]
    assert cluster_run["outputs"] == local_run["outputs"]  # the Parquet files byte for byte
    assert cluster_search["counts"]["complete"] == 2
    assert _trials(Path(cluster_search["dir"])) == _trials(Path(local_search["dir"]))


def _trials(folder: Path) -> list[tuple[dict, float]]:
    import optuna

    study = optuna.load_study(study_name=None, storage=f"sqlite:///{folder / 'study.db'}")
    return [(t.params, t.value) for t in study.trials]
