"""The fitted byte-level BPE on real shared text: deterministic, lossless, ~3.5 bytes per token on
English, and a nano proxy trained with it scores bits per byte over the same bytes as a byte proxy."""

from __future__ import annotations

import json
import math

import pytest
from proxy_helpers import domains_run, read_jsonl

from evaluators.bpe_tokenizer import BpeTokenizer, cached, fit_bpe, fit_on_files, head_sample
from evaluators.proxy import evaluate_recipe_output
from evaluators.targets import Target, resolve_targets
from evaluators.tokenizer import EOT
from operators import Mixture

FILES = ("books_gutenberg.jsonl", "code_python_thealgorithms.jsonl", "medical_medquad.jsonl")
SAMPLE = 128 * 1024


@pytest.fixture(scope="module")
def tokenizer(shared_data) -> BpeTokenizer:
    return fit_on_files([shared_data / "domains" / f for f in FILES], SAMPLE)


def test_fitting_is_deterministic_and_content_addressed(tokenizer, shared_data, tmp_path):
    texts = [t for f in FILES for t in head_sample(shared_data / "domains" / f, SAMPLE)]
    assert sum(len(t.encode("utf-8")) for t in texts) == 3 * SAMPLE  # each file's head, cut to the byte
    again = fit_bpe(texts, 4096)
    assert again.sha256 == tokenizer.sha256 and again.to_json() == tokenizer.to_json()
    assert (tokenizer.vocab_size, tokenizer.eot_id, tokenizer.pad_id) == (4096, 0, 1)
    assert cached(tokenizer.sha256).to_json() == tokenizer.to_json()  # fit_on_files kept it in the cache
    loaded = BpeTokenizer.load(tokenizer.save(tmp_path / "tok.json"))
    assert loaded.sha256 == tokenizer.sha256 and loaded.bytes_per_token == tokenizer.bytes_per_token
    assert fit_bpe(texts[1:], 4096).sha256 != tokenizer.sha256  # another sample, another tokenizer


def test_every_text_round_trips_and_the_hugging_face_twin_agrees(tokenizer, shared_data, tmp_path):
    from transformers import AutoTokenizer

    texts = [r["text"] for f in FILES for r in read_jsonl(shared_data / "domains" / f)[-20:]]  # past the sample
    sentences = read_jsonl(shared_data / "langid" / "lingua_sentences.jsonl")
    texts += [r["text"] for r in sentences if r["lang"] in ("zh", "ar", "hi", "el", "ru")][::20]
    texts += [f"a document that mentions {EOT} literally, and an emoji 🙂", "  leading spaces\r\n\ttabs "]
    tokenizer.save_pretrained(tmp_path / "hf", model_max_length=256)
    hf = AutoTokenizer.from_pretrained(str(tmp_path / "hf"))
    assert len(hf) == 4096 and (hf.bos_token_id, hf.eos_token_id, hf.pad_token_id) == (0, 0, 1)
    for text in texts:
        ids = tokenizer.encode(text)
        assert tokenizer.decode(ids) == text  # lossless: no normaliser, no prefix space, every byte in the vocabulary
        assert hf.encode(text) == ids.tolist()
        assert tokenizer.eot_id not in ids  # the EOT string inside a document stays text
    assert tokenizer.encode_document("hi").tolist() == [0, *tokenizer.encode("hi").tolist()]


def test_english_takes_far_fewer_tokens_than_bytes(tokenizer, shared_data):
    assert tokenizer.bytes_per_token == pytest.approx(3.70, abs=0.01)  # on the fitting sample
    # held-out English, neither seen while fitting: Wikipedia articles (2.70 bytes per token; WikiText
    # spaces out its punctuation) and PubMed abstracts (2.84)
    for name, low in (("wiki_wikitext2_valid.jsonl", 2.65), ("medical_pubmedqa_abstracts.jsonl", 2.8)):
        texts = [r["text"] for r in read_jsonl(shared_data / "domains" / name, 100)]
        n_bytes = sum(len(t.encode("utf-8")) for t in texts)
        n_tokens = sum(len(tokenizer.encode(t)) for t in texts)
        assert n_bytes / n_tokens > low, (name, n_bytes / n_tokens)


TARGETS = [
    Target(name="code", source="code", max_bytes=12_000),
    Target(name="books", source="books", max_bytes=12_000),
]


def test_a_bpe_nano_proxy_scores_the_same_bytes_as_a_byte_proxy(tokenizer, shared_data, tmp_path):
    run = domains_run(tmp_path / "run", shared_data, {"code": FILES[1], "books": FILES[0]}, limit=150)
    mixture = Mixture(weights={"code": 0.5, "books": 0.5})
    common = {"preset": "nano", "tokens": 8_000, "seed": 0, "threads": 1}
    byte = evaluate_recipe_output(run, mixture, TARGETS, **common)
    bpe = evaluate_recipe_output(
        run, mixture, TARGETS, **common, tokenizer=tokenizer, out_dir=tmp_path / "bpe", lm_eval_perplexity=True
    )
    texts, _ = resolve_targets(run, TARGETS)
    assert bpe.target_bytes == byte.target_bytes == {n: sum(len(t.encode()) for t in ts) for n, ts in texts.items()}
    assert all(math.isfinite(v) and 0 < v < 8 for v in bpe.bpb.values())
    assert bpe.tokenizer_sha256 == tokenizer.sha256 and byte.tokenizer_sha256 is None
    assert bpe.params == byte.params + (4096 - 258) * 64 * 2  # input and output embeddings over the larger vocabulary
    assert bpe.losses[0][2] == pytest.approx(math.log(4096), abs=0.3) and bpe.losses[-1][2] < bpe.losses[0][2]
    # the budget counts BPE tokens: ~3.7x the bytes of the byte proxy's stream (whole documents of
    # 3-16 KB, so each source lands within a document of its share)
    byte_budget = math.ceil(8_000 * tokenizer.bytes_per_token)
    assert [s["target_tokens"] for s in bpe.sources.values()] == [byte_budget // 2] * 2
    sampled = sum(s["tokens"] for s in bpe.sources.values())
    assert sampled > 3 * byte.tokens and sampled / 4 < bpe.tokens < sampled / 2.5  # 2.5-4 bytes per BPE token
    for name, score in bpe.bpb.items():  # lm-eval, through the saved Hugging Face tokenizer, agrees
        assert bpe.lm_eval[f"dataplan_ppl_{name}"]["bits_per_byte"] == pytest.approx(score, rel=1e-4)
    again = evaluate_recipe_output(run, mixture, TARGETS, **common, tokenizer=tokenizer)
    assert again.bpb == bpe.bpb  # same seed, same tokenizer: the same bits per byte
    with pytest.raises(ValueError, match="count model"):
        evaluate_recipe_output(run, mixture, TARGETS, preset="ngram5", tokens=1000, tokenizer=tokenizer)


def _tiny_search(shared_data, proxy: dict) -> tuple:
    """Code and medical text, one length filter, a code target: a recipe and a search space on ``proxy``."""
    from operators import recipe_from_dict

    recipe = recipe_from_dict(
        {
            "name": "tiny",
            "sources": [
                {"name": "code", "uri": str(shared_data / "domains" / FILES[1])},
                {"name": "medical", "uri": str(shared_data / "domains" / FILES[2])},
            ],
            "steps": [{"op": "length_filter", "params": {"min_words": 60}}],
            "mixture": {"weights": {"code": 0.5, "medical": 0.5}},
        }
    )
    space = {
        "params": {"steps.length_filter.min_words": {"int": [50, 400]}},
        "objective": {"targets": [{"name": "code", "source": "code", "fraction": 0.1, "max_bytes": 8000}]},
        "proxy": proxy,
    }
    return recipe, space


def test_a_bpe_search_fits_one_tokenizer_and_its_trials_train_with_it(shared_data, tmp_path, monkeypatch):
    from mlflow.tracking import MlflowClient

    from experiments.objective import train_and_score
    from experiments.search_config import ProxySpec
    from experiments.study import Search

    with pytest.raises(ValueError, match="needs a neural preset"):
        ProxySpec(preset="ngram5", tokenizer="bpe")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    recipe, space = _tiny_search(shared_data, {"preset": "nano", "tokens": 4096, "tokenizer": "bpe"})
    search = Search.create(tmp_path / "s", recipe, space, n_trials=1, pruner="none")
    config = json.loads((tmp_path / "s" / "search.json").read_text())
    fitted = BpeTokenizer.load(tmp_path / "s" / "tokenizer.json")
    assert config["tokenizer_sha256"] == fitted.sha256 and config["proxy"]["tokenizer"] == "bpe"
    params = MlflowClient().get_run(search.config.mlflow_parent_run).data.params
    assert params["search.tokenizer_sha256"] == fitted.sha256 and params["search.proxy.tokenizer"] == "bpe"
    # a trial's proxy (what Search.run trains on each trial's run output, and confirmations too)
    run = domains_run(tmp_path / "run", shared_data, {"code": FILES[1], "medical": FILES[2]}, limit=60)
    scores = train_and_score(run, recipe, Search(tmp_path / "s").config, 0, None, tmp_path / "proxy")
    assert json.loads((tmp_path / "proxy" / "result.json").read_text())["tokenizer_sha256"] == fitted.sha256
    assert json.loads((tmp_path / "proxy" / "model" / "config.json").read_text())["vocab_size"] == 4096
    assert math.isfinite(scores["bpb"]["code"]) and scores["tokens"] > 3000


def test_a_count_model_search_is_confirmed_by_bpe_nano_with_its_own_tokenizer(
    shared_data, ray_started, tmp_path, monkeypatch
):
    from experiments.confirm import PREDICTED, run_confirm
    from experiments.confirm_log import setup_fingerprint
    from experiments.search_config import ProxySpec, SearchConfig
    from experiments.search_tokenizer import ensure_search_tokenizer
    from experiments.study import Search

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    recipe, space = _tiny_search(shared_data, {"preset": "ngram3", "tokens": 20000})
    search = Search.create(tmp_path / "s", recipe, space, n_trials=1, pruner="none")
    assert search.config.confirm_proxy() == ProxySpec(preset="nano", tokens=100_000, tokenizer="bpe")
    fitted = BpeTokenizer.load(tmp_path / "s" / "tokenizer.json")
    assert search.config.tokenizer_sha256 == fitted.sha256  # fitted at the start, for the confirmation
    # a search started before confirmations used BPE fits the same tokenizer when it is confirmed
    old = SearchConfig.model_validate({**search.config.model_dump(), "tokenizer_file": None, "tokenizer_sha256": None})
    (tmp_path / "old").mkdir()
    ensure_search_tokenizer(old, tmp_path / "old", old.confirm_proxy())
    assert old.tokenizer_sha256 == fitted.sha256
    assert json.loads((tmp_path / "old" / "search.json").read_text())["tokenizer_sha256"] == fitted.sha256

    bpe = search.config.confirm_proxy(tokens=4096)
    recipes = {PREDICTED: search.base, "itself": search.base.model_copy(deep=True)}
    result = run_confirm(search.folder, search.config, recipes, proxy=bpe, seeds=[0, 1], max_seeds=2, ablate=False)
    assert (result.preset, result.tokens, result.tokenizer) == ("nano", 4096, "bpe")
    assert result.gaps[0].diffs == [0.0, 0.0] and result.runs == 2
    record = [json.loads(line) for line in (tmp_path / "s" / "confirmations.jsonl").read_text().splitlines()]
    assert [(r["scale"], r["tokenizer"]) for r in record] == [
        ("search", "byte"),
        ("confirm", "bpe"),
        ("confirm", "bpe"),
    ]
    proxy_result = json.loads((tmp_path / "s" / "confirm" / PREDICTED / "seed0" / "proxy" / "result.json").read_text())
    assert proxy_result["tokenizer_sha256"] == fitted.sha256
    byte_setup = search.config.model_copy(update={"proxy": bpe.model_copy(update={"tokenizer": "byte"})})
    bpe_setup = search.config.model_copy(update={"proxy": bpe})
    assert setup_fingerprint(byte_setup) != setup_fingerprint(bpe_setup)  # a byte record is never reused for bpe
