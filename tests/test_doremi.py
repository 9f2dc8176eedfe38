"""DoReMi and DoGE domain reweighting on real shared data, and ``dataplan mix doremi``.

Domains: Python code and Gutenberg books from the shared data, and ``noise``: documents of the
same lengths whose bytes are independent uniform draws from the ten digits (shuffled-token text
taken to its limit: no order and no skew left). The proxies are a one-layer GPT-2 (width 32,
context 128) so that 200k tokens, enough for both models to learn the noise, train in seconds.
"""

from __future__ import annotations

import json
import math

import mlflow
import numpy as np
import pytest
from proxy_helpers import read_jsonl
from typer.testing import CliRunner

from agent.cli import app
from evaluators.domain_reweighting import DoReMi, labelled_stream, reweight_domains
from evaluators.model import get_preset
from evaluators.sampler import SourcePool
from operators import Mixture, load_manifest, load_recipe, workspace

TINY = get_preset("nano", n_layer=1, n_embd=32, n_head=1, seq_len=128, batch_size=8)


def _pool(name: str, ids: list[str], texts: list[str]) -> SourcePool:
    return SourcePool(name, np.array(ids, dtype=object), np.array(texts, dtype=object), np.ones(len(ids)))


@pytest.fixture(scope="module")
def pools(shared_data) -> dict[str, SourcePool]:
    code = read_jsonl(shared_data / "domains" / "code_python_thealgorithms.jsonl", 120)
    books = read_jsonl(shared_data / "domains" / "books_gutenberg.jsonl", 240)
    rng = np.random.default_rng(0)
    noise = ["".join(map(str, rng.integers(0, 10, len(r["text"])))) for r in books[200:]]
    return {
        "code": _pool("code", [r["id"] for r in code], [r["text"] for r in code]),
        "books": _pool("books", [r["id"] for r in books[:40]], [r["text"] for r in books[:40]]),
        "noise": _pool("noise", [f"noise:{i}" for i in range(len(noise))], noise),
    }


def test_every_token_keeps_the_domain_of_its_document(pools):
    tokens, labels, shares = labelled_stream(
        pools, Mixture(weights={"code": 1, "books": 1, "noise": 1}), 40_000, 0, 128
    )
    domains = sorted(pools)  # label = index in sorted domain names
    noise = tokens[labels == domains.index("noise")]
    assert set(np.unique(noise)) <= {*range(ord("0"), ord("9") + 1), 256}  # digits and each document's EOT
    assert (labels == -1).sum() == (tokens == 257).sum() < 128  # pads only, in the last sequence
    code = tokens[labels == domains.index("code")]
    assert np.mean(code == ord(" ")) > 0.15  # indented Python: a quarter of its bytes are spaces
    counted = labels[labels >= 0]
    assert {d: np.mean(counted == i) for i, d in enumerate(domains)} == pytest.approx(shares)  # realised shares


def test_doremi_takes_weight_from_noise_whose_excess_loss_vanishes(pools):
    """What DoReMi (Xie et al. 2023, algorithm 1) prescribes: each step ``alpha <- (1 - c)
    softmax(log alpha + eta * lambda) + c/k`` with ``lambda`` the proxy's per-token loss in excess
    of the reference's, clipped at 0 and averaged per domain. Weight moves toward the domains whose
    excess is larger, by exactly ``exp(eta * (lambda_i - lambda_j))`` in ratio per step: it follows
    the excess, not the loss.

    The noise is as unpredictable as ten symbols can be: no model does better than ln 10 nats per
    byte on it, the reference included, and there is nothing beyond the digits' frequencies for
    the reference to know that the proxy cannot learn in a few steps. So the proxy's excess on it
    falls faster than on code and books, where the reference (trained on the natural mixture, a
    third of it noise) keeps structure the proxy has not caught up with. DoReMi therefore takes
    weight away from the noise: it ends near the floor ``c/k``, and its average over the steps, the
    output, below uniform and below the real domains'. (Weighted that low, the noise is no longer
    learnt: the proxy's loss on it stays about 0.45 nats above ln 10, so its excess stops falling in
    the last quarter; by then its weight is at the floor. The other way round, noise over a large
    alphabet is not learnt to its floor by a proxy this small at this budget, the reference stays
    ahead on it and DoReMi gives it weight: hard is not what it rewards, lagging is.)"""
    r = reweight_domains(pools, Mixture(), method="doremi", preset=TINY, tokens=200_000, seed=0, threads=1)
    noise, real = r.domains.index("noise"), [r.domains.index(d) for d in ("books", "code")]
    alpha, score, loss = (np.array(x) for x in (r.trajectory, r.scores, r.domain_loss))
    # the update: per step, weight ratios change by exp(eta * excess difference), nothing else
    c, k = DoReMi.Params().smoothing, len(r.domains)
    moved = np.log((alpha[1:] - c / k) / (1 - c) / alpha[:-1])
    assert np.allclose(moved - moved[:, :1], score[1:] - score[1:, :1], atol=1e-6)
    early, late = slice(None, r.steps // 2), slice(r.steps // 2, None)
    assert loss[late, noise].min() > math.log(10) - 0.05  # no model beats the floor
    assert score[early, noise].mean() < min(score[early, real].mean(axis=0)) - 0.07  # 1.20 against 1.28, 1.32
    assert r.final["noise"] < 0.05
    assert r.weights["noise"] < 1 / 3 and r.weights["noise"] < min(r.weights["books"], r.weights["code"])
    assert sum(r.weights.values()) == pytest.approx(1)
    assert r.reference is not None and r.reference["noise"] == pytest.approx(1 / 3, abs=0.05)  # natural mixture


@pytest.mark.parametrize("method", ["doremi", "doge"])
def test_runs_are_deterministic_per_seed_and_seeds_differ(pools, method):
    runs = [
        reweight_domains(pools, Mixture(), method=method, preset=TINY, tokens=30_000, seed=s, threads=1)
        for s in (3, 3, 4)
    ]
    assert runs[0].trajectory == runs[1].trajectory and runs[0].weights == runs[1].weights
    assert runs[0].trajectory != runs[2].trajectory
    assert runs[0].proxy_runs == pytest.approx(7 / 3)  # DoReMi: 3 + 3 + 1 passes; DoGE: 1 + 2 k with k = 3
    assert sum(runs[0].weights.values()) == pytest.approx(1)
    assert len({round(w, 6) for w in runs[0].weights.values()}) == 3  # the scores moved every weight


def test_mix_doremi_cli_writes_the_recipe_its_provenance_and_mlflow_series(
    shared_data, tmp_path, ray_started, monkeypatch
):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    recipe = tmp_path / "two.yaml"
    folder = tmp_path / "mix"
    recipe.write_text(
        "name: two\nsources:\n"
        f"  - {{name: code, uri: {shared_data}/domains/code_python_thealgorithms.jsonl}}\n"
        f"  - {{name: legal, uri: {shared_data}/domains/legal_spdx_license_texts.jsonl}}\n"
        "steps:\n  - {op: length_filter, params: {min_words: 100}}\nmixture: {weights: {code: 0.7, legal: 0.3}}\n"
    )
    args = [
        "mix",
        "doremi",
        str(recipe),
        "--dir",
        str(folder),
        "--tokens",
        "20k",
        "--threads",
        "1",
        "--experiment",
        "mix-test",
    ]
    result = CliRunner().invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    outcome = json.loads(result.stdout)
    learned = load_recipe(folder / "recipe.yaml")
    assert learned.mixture.weights == outcome["weights"] and learned.name == "two-doremi"
    assert sum(learned.mixture.weights.values()) == pytest.approx(1, abs=1e-5)
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["input_recipe_id"] == load_recipe(recipe).recipe_id() and manifest["method"] == "doremi"
    assert manifest["run_output_sha256"] == load_manifest(folder / "run").output_sha256
    assert manifest["result"]["reference"]["code"] > 0.5  # the reference follows the recipe's code-heavy mixture
    mlflow.set_tracking_uri(f"sqlite:///{workspace() / 'mlflow.db'}")
    run = mlflow.get_run(manifest["mlflow_run"])
    series = mlflow.MlflowClient().get_metric_history(run.info.run_id, "weight.legal")
    assert [m.value for m in sorted(series, key=lambda m: m.step)] == [a[1] for a in manifest["result"]["trajectory"]]
    assert run.data.metrics["avg_weight.code"] == pytest.approx(outcome["weights"]["code"], abs=1e-5)
    artifacts = {f.path for f in mlflow.MlflowClient().list_artifacts(run.info.run_id)}
    assert {"weights.png", "recipe.yaml", "manifest.json"} <= artifacts
    again = CliRunner().invoke(app, [*args, "--json"])  # the same inputs and setup: recorded, not retrained
    assert again.exit_code == 0 and json.loads(again.stdout)["reused"] is True


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["--tokens", "1000"], "1000 tokens do not fill one nano training step (2048 tokens)"),
        (["--param", "eta=abc"], "--param 'eta=abc': VALUE must be a number"),
    ],
)
def test_mix_refuses_bad_input_before_any_work(shared_data, tmp_path, args, said):
    recipe = tmp_path / "two.yaml"
    domains = shared_data / "domains"
    recipe.write_text(
        "name: two\nsteps: []\nsources:\n"
        f"  - {{name: wiki, uri: {domains / 'wiki_wikitext2_valid.jsonl'}}}\n"
        f"  - {{name: law, uri: {domains / 'legal_spdx_license_texts.jsonl'}}}\n"
    )
    res = CliRunner().invoke(app, ["mix", "doremi", str(recipe), "--dir", str(tmp_path / "mix"), *args])
    assert res.exit_code == 2 and said in res.output
    assert not (tmp_path / "mix" / "recipe.yaml").exists()


def test_mix_refuses_a_single_source(shared_data, tmp_path):
    recipe = tmp_path / "one.yaml"
    recipe.write_text(
        f"name: one\nsteps: []\nsources:\n  - {{name: wiki, uri: {shared_data / 'domains/wiki_wikitext2_valid.jsonl'}}}\n"
    )
    res = CliRunner().invoke(app, ["mix", "doremi", str(recipe), "--dir", str(tmp_path / "mix")])
    assert res.exit_code == 2
    assert "the recipe needs at least two sources, it has ['wiki']" in res.output
