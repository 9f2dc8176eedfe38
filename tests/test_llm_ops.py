"""Model-based operators end to end: a tiny proxy trained here answers through the transformers
backend and through litellm against a real OpenAI-compatible server on 127.0.0.1."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
from llm_server import ChatServer

from evaluators.model import get_preset
from evaluators.packing import pack
from evaluators.sampler import SourcePool, load_pools, sample_mixture
from evaluators.trainer import save_model, train
from operators import Mixture, RecipeError, read_ledger, read_output, recipe_from_dict, run_recipe
from operators.llm.llm_backends import GenParams, LitellmBackend, LLMConfig, TransformersBackend, as_chat, get_backend
from operators.llm.llm_ops import LlmQualityScore, chosen, parse_score, plausible_redaction, prompt_sha256


def _rows(shared: Path, file: str, n: int) -> list[dict]:
    with (shared / "domains" / file).open(encoding="utf-8") as fh:
        return [json.loads(line) for line, _ in zip(fh, range(n), strict=False)]


def _write_jsonl(path: Path, rows: list[dict]) -> str:
    path.write_text("".join(json.dumps({"id": r["id"], "text": r["text"]}) + "\n" for r in rows), encoding="utf-8")
    return str(path)


@pytest.fixture(scope="module")
def tiny_model(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A nano GPT-2 trained on ~8k bytes of wikitext, saved as a Hugging Face folder."""
    texts = [r["text"] for r in _rows(shared_data, "wiki_wikitext2_valid.jsonl", 2)]
    sequences = pack(texts, 256).tokens[:32]
    result = train(sequences, get_preset("nano"), seed=0, threads=1)
    return str(save_model(result.model, tmp_path_factory.mktemp("tiny_llm")))


@pytest.fixture
def chat_server(tiny_model: str):
    server = ChatServer(tiny_model)
    yield server
    server.close()


def test_parse_score_and_redaction_check() -> None:
    assert [parse_score(a) for a in ("3", " 4\n", "**5**", "0 points", "6", "3.5", "score: 2", "", "12")] == [
        3,
        4,
        5,
        0,
        -1,
        -1,
        -1,
        -1,
        -1,
    ]
    assert plausible_redaction("Call John Smith at 555-1234 today.", "Call [NAME] at [PHONE] today.")
    assert not plausible_redaction("Call John at 555-1234 today.", "Call [NAME] at [PHONE] tomorrow.")
    assert not plausible_redaction("No personal data here.", "No personal data here.")


def test_prompt_hash_pins_recipe(tmp_path: Path, shared_data: Path, tiny_model: str) -> None:
    uri = _write_jsonl(tmp_path / "med.jsonl", _rows(shared_data, "medical_medquad.jsonl", 2))
    step = {"op": "llm_quality_score", "params": {"llm": {"model": tiny_model}}}
    recipe = recipe_from_dict({"sources": [{"name": "med", "uri": uri}], "steps": [step]})
    assert recipe.canonical()["steps"][0]["params"]["prompt_sha256"] == prompt_sha256("quality_score_v1")
    other = recipe_from_dict(
        {
            "sources": [{"name": "med", "uri": uri}],
            "steps": [{**step, "params": {**step["params"], "prompt": "pii_redact_v1"}}],
        }
    )
    assert other.recipe_id() != recipe.recipe_id()
    stale = {**step, "params": {**step["params"], "prompt_sha256": "0" * 64}}
    with pytest.raises(RecipeError, match=r"quality_score_v1.*changed"):
        recipe_from_dict({"sources": [{"name": "med", "uri": uri}], "steps": [stale]})
    with pytest.raises(RecipeError, match="not found"):
        recipe_from_dict(
            {
                "sources": [{"name": "med", "uri": uri}],
                "steps": [{**step, "params": {**step["params"], "prompt": "nope_v1"}}],
            }
        )


def test_transformers_backend_seeded_and_scores(tiny_model: str) -> None:
    backend = get_backend(LLMConfig(model=tiny_model))
    greedy = GenParams(max_new_tokens=6)
    sampled = GenParams(max_new_tokens=6, temperature=1.0, seed=3)
    prompts = ["The history of the", "In 1990 the"]
    assert backend.generate(prompts, greedy) == [backend.generate([p], greedy)[0] for p in reversed(prompts)][::-1]
    assert backend.generate(prompts, sampled) == backend.generate(prompts, sampled)
    assert backend.generate(prompts, sampled) != backend.generate(prompts, sampled.model_copy(update={"seed": 4}))
    # a trained model prefers English to bytes it never saw
    likely, unlikely = backend.logprobs(["The history of"] * 2, [" the", "\x07\x07\x07\x07"])
    assert likely > unlikely and likely < 0
    with pytest.raises(ValueError, match="not a local Hugging Face model folder"):
        TransformersBackend("gpt2")
    # an instruction-tuned model's chat template wraps the prompt; the proxy has none
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    assert as_chat(tokenizer, "Rate this.") == "Rate this."
    tokenizer.chat_template = "{% for m in messages %}<user>{{ m['content'] }}</user>{% endfor %}<bot>"
    assert as_chat(tokenizer, "Rate this.") == "<user>Rate this.</user><bot>"


def test_llm_operators_end_to_end_transformers(tmp_path: Path, shared_data: Path, tiny_model: str, ray_started) -> None:
    med = _rows(shared_data, "medical_medquad.jsonl", 6)
    instr = _rows(shared_data, "instruction_selfinstruct_human.jsonl", 6)
    dialog = _rows(shared_data, "dialogue_sgd_train.jsonl", 6)
    llm = {"model": tiny_model}
    steps = [
        {"op": "llm_quality_score", "params": {"llm": llm, "threshold": 3}, "sources": ["med"]},
        {
            "op": "llm_rephrase",
            "params": {
                "llm": llm,
                "style": "qa",
                "fraction": 0.5,
                "generation": {"max_new_tokens": 12, "temperature": 0.8},
            },
            "sources": ["instr"],
        },
        {
            "op": "llm_pii_redact",
            "params": {"llm": llm, "max_chars": 1200, "generation": {"max_new_tokens": 12}},
            "sources": ["dialog"],
        },
    ]
    sources = [
        {"name": n, "uri": _write_jsonl(tmp_path / f"{n}.jsonl", rows)}
        for n, rows in (("med", med), ("instr", instr), ("dialog", dialog))
    ]
    recipe = recipe_from_dict({"sources": sources, "steps": steps})
    manifest = run_recipe(recipe, tmp_path / "run", num_blocks=1)

    # quality: the scores equal the tiny model's answers parsed; the ledger drops the rest by reason
    op = LlmQualityScore(steps[0]["params"])
    answers = get_backend(op.params.llm).generate(
        op.params.render(np.array([r["text"] for r in med], dtype=object)), op.params.generation
    )
    scores = {r["id"]: parse_score(a) for r, a in zip(med, answers, strict=True)}
    ledger = read_ledger(tmp_path / "run").to_pylist()
    dropped = {row["id"]: row["reason"] for row in ledger if row["status"] == "dropped"}
    unparsable = {i for i, s in scores.items() if s < 0}
    assert {i for i, r in dropped.items() if r == "llm_unparsable"} == unparsable
    assert {i for i, r in dropped.items() if r == "llm_score_below_threshold"} == {
        i for i, s in scores.items() if 0 <= s < 3
    }
    assert unparsable, "the untrained-for-rubric tiny model should produce unparsable answers"
    kept_med = read_output(tmp_path / "run", "med").to_pylist()
    assert {r["id"]: r["llm_score"] for r in kept_med} == {i: s for i, s in scores.items() if s >= 3}
    n_kept = sum(s >= 3 for s in scores.values())
    assert manifest.sources["med"] == {"input": 6, "kept": n_kept, "dropped": 6 - n_kept}

    # rephrase: the hashed half of the instructions became synthetic children of their originals
    picked = {
        r["id"]
        for r, c in zip(
            instr, chosen(np.array([r["id"] for r in instr], dtype=object), 0.5, "llm_rephrase:qa"), strict=True
        )
        if c
    }
    out = {r["id"]: r for r in read_output(tmp_path / "run", "instr").to_pylist()}
    assert len(out) == 6 and 0 < len(picked) < 6
    originals = {r["id"]: r["text"] for r in instr}
    for parent in picked:
        child = out[f"{parent}:rephrased:qa"]
        assert json.loads(child["meta"]) == {"synthetic": True, "parent_id": parent}
        assert child["llm_rephrased"] and child["text"] != originals[parent]
    for doc_id in set(originals) - picked:
        assert out[doc_id]["text"] == originals[doc_id] and not out[doc_id]["llm_rephrased"]

    # PII: long dialogues are not sent; the tiny model's answers are no redaction, so texts stay
    out = {r["id"]: r for r in read_output(tmp_path / "run", "dialog").to_pylist()}
    expected = {r["id"]: ("too_long" if len(r["text"]) > 1200 else "rejected") for r in dialog}
    assert {i: r["llm_pii_status"] for i, r in out.items()} == expected
    assert list(expected.values()).count("too_long") == 2
    assert all(out[r["id"]]["text"] == r["text"] for r in dialog)

    # the synthetic share guard: at most 2 % of the budget may come from rephrased documents
    pools = load_pools(tmp_path / "run", ["instr"])
    assert pools["instr"].synthetic.sum() == len(picked)
    budget = pools["instr"].tokens
    free = sample_mixture(pools, Mixture(), budget, seed=0)
    guarded = sample_mixture(pools, Mixture(max_synthetic_share=0.02), budget, seed=0)

    def synthetic_tokens(sample) -> int:
        pool = pools["instr"]
        return int(sum(pool.n_tokens[d] for _, d in sample.order if pool.synthetic[d]))

    assert synthetic_tokens(free) > 0.02 * budget
    assert synthetic_tokens(guarded) <= 0.02 * budget
    assert guarded.total_tokens == free.total_tokens - (synthetic_tokens(free) - synthetic_tokens(guarded))


def test_synthetic_share_guard_caps_tokens() -> None:
    texts = np.array(
        ["real document " * 10, "another real one " * 10, "synthetic a " * 10, "synthetic b " * 10], dtype=object
    )
    pool = SourcePool(
        "s", np.array(["a", "b", "c", "d"], dtype=object), texts, np.ones(4), np.array([False, False, True, True])
    )
    budget = 4 * pool.tokens
    for share, synthetic_copies in ((None, 8), (0.25, 4), (0.1, 1), (0.0, 0)):
        sample = sample_mixture({"s": pool}, Mixture(max_synthetic_share=share), budget, seed=1)
        docs = sample.order[:, 1]
        assert int(np.isin(docs, [2, 3]).sum()) == synthetic_copies
        assert int(np.isin(docs, [0, 1]).sum()) == 8  # real documents are untouched


def test_litellm_backend_retries_concurrency_and_cache(tmp_path: Path, tiny_model: str) -> None:
    server = ChatServer(tiny_model, delay_s=0.3)
    try:
        config = LLMConfig(
            backend="litellm", model="openai/tiny", api_base=server.url, max_concurrency=2, backoff_s=0.01
        )
        prompts = [f"Question {i}: what is the history of" for i in range(6)]
        params = GenParams(max_new_tokens=6)
        server.fail_first = [500, 429]
        answers = LitellmBackend(config, cache_dir=tmp_path / "cache").generate(prompts, params)
        assert answers == TransformersBackend(tiny_model).generate(prompts, params)
        assert server.requests == 8  # six answers + the two injected failures, each retried
        assert server.peak == 2  # never more than max_concurrency in flight
        # a second run (a fresh backend, same cache) makes no request
        assert LitellmBackend(config, cache_dir=tmp_path / "cache").generate(prompts, params) == answers
        assert server.requests == 8
        # retries are bounded: a third failure with max_retries=1 is an error naming the model
        server.fail_first = [503, 500]
        bounded = config.model_copy(update={"max_retries": 1})
        with pytest.raises(RuntimeError, match="openai/tiny: request failed after 2 attempts"):
            LitellmBackend(bounded, cache_dir=tmp_path / "cache").generate(["uncached prompt"], params)
        assert server.requests == 10
        # log-probabilities of given continuations through the completions API (echo), cached too
        conts = [" the", " of", "\x07\x07"]
        scored = LitellmBackend(config, cache_dir=tmp_path / "cache").logprobs(prompts[:3], conts)
        assert np.allclose(scored, TransformersBackend(tiny_model).logprobs(prompts[:3], conts), atol=1e-4)
        assert server.requests == 13
        assert LitellmBackend(config, cache_dir=tmp_path / "cache").logprobs(prompts[:3], conts) == scored
        assert server.requests == 13
    finally:
        server.close()


def test_llm_quality_score_through_litellm_server(
    tmp_path: Path, shared_data: Path, chat_server: ChatServer, ray_started
) -> None:
    med = _rows(shared_data, "medical_medquad.jsonl", 6)
    llm = {
        "backend": "litellm",
        "model": "openai/tiny-e2e",
        "api_base": chat_server.url,
        "max_concurrency": 2,
        "backoff_s": 0.01,
    }
    recipe = recipe_from_dict(
        {
            "sources": [{"name": "med", "uri": _write_jsonl(tmp_path / "med.jsonl", med)}],
            "steps": [{"op": "llm_quality_score", "params": {"llm": llm}}],
        }
    )
    chat_server.fail_first = [429]
    first = run_recipe(recipe, tmp_path / "run1", num_blocks=1)
    assert chat_server.requests == 6 + 1
    # no stage cache: the operator runs again, every answer comes from the response cache
    second = run_recipe(recipe, tmp_path / "run2", use_cache=False, num_blocks=1)
    assert chat_server.requests == 7
    assert first.sources == second.sources
    assert read_ledger(tmp_path / "run1").sort_by("id").equals(read_ledger(tmp_path / "run2").sort_by("id"))
    # the answers are the tiny model's: same parse as the local backend gives
    op = LlmQualityScore({"llm": {"model": chat_server.model}})
    expected = get_backend(op.params.llm).generate(
        op.params.render(np.array([r["text"] for r in med], dtype=object)), op.params.generation
    )
    reasons = {r["id"]: r["reason"] for r in read_ledger(tmp_path / "run1").to_pylist()}
    for row, answer in zip(med, expected, strict=True):
        score = parse_score(answer)
        want = "llm_unparsable" if score < 0 else ("" if score >= 3 else "llm_score_below_threshold")
        assert reasons[row["id"]] == want
    assert "llm_unparsable" in reasons.values()


def test_llm_scorer_only_sees_what_earlier_filters_kept(
    tmp_path: Path, shared_data: Path, chat_server: ChatServer, ray_started
) -> None:
    med = _rows(shared_data, "medical_medquad.jsonl", 8)
    llm = {"backend": "litellm", "model": "openai/tiny-survivors", "api_base": chat_server.url, "backoff_s": 0.01}

    def run(min_words: int, out: str) -> dict[str, str]:
        steps = [
            {"op": "length_filter", "params": {"min_words": min_words}},
            {"op": "llm_quality_score", "params": {"llm": llm}},
        ]
        source = {"name": "med", "uri": _write_jsonl(tmp_path / "med.jsonl", med)}
        run_recipe(recipe_from_dict({"sources": [source], "steps": steps}), tmp_path / out, num_blocks=2)
        return {r["id"]: r["reason"] for r in read_ledger(tmp_path / out).to_pylist()}

    reasons = run(600, "strict")
    short = {i for i, r in reasons.items() if r == "too_few_words"}
    assert len(short) == 3  # 565, 510 and 435 words
    assert chat_server.requests == 8 - 3  # the LLM never saw the three short pages
    # a looser threshold re-scores the survivors; answers already given come from the response cache
    reasons = run(500, "loose")
    assert sum(r == "too_few_words" for r in reasons.values()) == 1
    assert chat_server.requests == 5 + 2


def test_vllm_stages_reserve_a_gpu(tmp_path: Path, ray_started) -> None:
    import ray.data

    from operators.core.executor import Executor

    model = str(tmp_path)  # never loaded: the stage's Ray plan is built, not run
    assert LlmQualityScore({"llm": {"model": model}}).ray_args() == {}
    source = _write_jsonl(tmp_path / "one.jsonl", [{"id": "a", "text": "a short page"}])
    steps = [{"op": "llm_pii_redact", "params": {"llm": {"backend": "vllm", "model": model}}}]
    executor = Executor(recipe_from_dict({"sources": [{"name": "s", "uri": source}], "steps": steps}))
    (stage,) = [s for s in executor.plan() if s.name == "llm_pii_redact"]
    ds = stage.build(ray.data.from_items([{"id": "a"}]), None)
    assert ds._logical_plan.dag.ray_remote_args == {"num_gpus": 1}  # one GPU per task, visible to it


@pytest.mark.skipif(
    importlib.util.find_spec("vllm") is None,
    reason="vllm is not installed (it is the `gpu` extra: pip install -e '.[gpu]' on a CUDA machine)",
)
def test_vllm_backend_matches_transformers_greedy(tiny_model: str) -> None:
    params = GenParams(max_new_tokens=6)
    prompts = ["The history of the", "In 1990 the"]
    vllm_backend = get_backend(LLMConfig(backend="vllm", model=tiny_model))
    assert len(vllm_backend.generate(prompts, params)) == 2
    local = TransformersBackend(tiny_model).logprobs(prompts, [" a", " b"])
    assert np.allclose(vllm_backend.logprobs(prompts, [" a", " b"]), local, atol=0.05)
