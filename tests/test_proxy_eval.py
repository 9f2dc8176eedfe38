"""A trained nano proxy: our bits per byte against lm-eval's, an MC task through lm-eval offline,
the intermediate-eval callback, and the saved model reloaded from its Hugging Face folder."""

from __future__ import annotations

import math

import pytest
import torch
from proxy_helpers import domains_run, read_jsonl

from evaluators.bpb import bits_per_byte, rolling_windows
from evaluators.proxy import evaluate_recipe_output
from evaluators.targets import Target, resolve_targets
from evaluators.tokenizer import encode
from operators import Mixture

TARGETS = [
    Target(name="code", source="code", max_bytes=24_000),
    Target(name="books", source="books", max_bytes=24_000),
]


@pytest.fixture(scope="module")
def run_dir(shared_data, tmp_path_factory):
    run = tmp_path_factory.mktemp("eval_run")
    sources = {"code": "code_python_thealgorithms.jsonl", "books": "books_gutenberg.jsonl"}
    return domains_run(run, shared_data, sources, limit=200)


@pytest.fixture(scope="module")
def trained(run_dir, shared_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("nano")
    result = evaluate_recipe_output(
        run_dir,
        Mixture(weights={"code": 0.5, "books": 0.5}),
        TARGETS,
        preset="nano",
        tokens=80_000,
        seed=0,
        threads=1,
        out_dir=out,
        lm_eval_perplexity=True,
        lm_eval_tasks={"copa": shared_data / "eval" / "copa_dev_half.jsonl"},
        lm_eval_limit=20,
    )
    return result, out


def test_rolling_windows_follow_lm_eval():
    from lm_eval.utils import get_rolling_token_windows, make_disjoint_window

    for n in (1, 5, 256, 257, 600, 1024):
        tokens = list(range(1000, 1000 + n))
        theirs = [make_disjoint_window(w) for w in get_rolling_token_windows(tokens, 7, 256, 1)]
        ours = rolling_windows(n, 256)
        assert len(ours) == len(theirs)
        full = [7, *tokens]  # EOT + bytes coordinates
        for w, (context, scored) in zip(ours, theirs, strict=True):
            assert full[w.end - w.scored + 1 : w.end + 1] == scored
            assert full[w.start : w.end] == (context + scored)[-257:][:-1]


def test_our_bits_per_byte_agrees_with_lm_eval(trained, run_dir):
    result, _ = trained
    texts, _ = resolve_targets(run_dir, TARGETS)
    for name in ("code", "books"):
        ours = result.bpb[name]
        theirs = result.lm_eval[f"dataplan_ppl_{name}"]
        assert theirs["bits_per_byte"] == pytest.approx(ours, rel=1e-3)  # the issue asks for 1 %
        assert theirs["byte_perplexity"] == pytest.approx(2**ours, rel=1e-3)
        assert 2.5 < ours < 7.0  # learned something: a uniform byte model scores log2(258) = 8.01
        assert theirs["samples"] == len(texts[name]) > 1


def test_training_learns_and_reports_its_stream(trained, run_dir):
    result, out = trained
    assert result.params == 149_504 and result.preset == "nano"
    first, last = result.losses[0][2], result.losses[-1][2]
    assert first == pytest.approx(math.log(258), abs=0.3) and last < first - 1.5
    assert result.sources["code"]["tokens"] + result.sources["books"]["tokens"] == result.tokens
    assert abs(result.tokens - 80_000) < 9_000  # the budget, within one document
    assert result.tokens_per_s > 0 and 0 < result.mfu < 2 and result.matmul_gflops > 0
    texts, excluded = resolve_targets(run_dir, TARGETS)
    assert excluded["code"] and excluded["books"]  # held-out slices never enter training
    assert result.target_bytes["code"] == sum(len(t.encode()) for t in texts["code"]) <= 24_000
    assert (out / "result.json").is_file() and (out / "model" / "tokenizer.json").is_file()


def test_multiple_choice_task_runs_offline_and_matches_our_scoring(trained, shared_data, run_dir):
    """lm-eval's accuracy on the first 20 COPA items equals an argmax over continuation
    log-likelihoods computed here from the model reloaded from its saved folder."""
    from transformers import AutoModelForCausalLM

    result, _ = trained
    mc = result.lm_eval["dataplan_mc_copa"]
    assert mc["samples"] == 20
    model = AutoModelForCausalLM.from_pretrained(result.model_dir).eval()
    correct = 0
    for record in read_jsonl(shared_data / "eval" / "copa_dev_half.jsonl", 20):
        context = encode(record["query"]).tolist()
        scores = []
        for choice in record["choices"]:
            continuation = encode(" " + choice).tolist()
            full = (context + continuation)[-257:]
            with torch.no_grad():
                logits = model(input_ids=torch.tensor([full[:-1]])).logits[0].log_softmax(-1)
            positions = range(len(full) - 1 - len(continuation), len(full) - 1)
            scores.append(sum(float(logits[p, full[p + 1]]) for p in positions))
        correct += int(max(range(len(scores)), key=scores.__getitem__) == record["gold"])
    assert mc["acc"] == pytest.approx(correct / 20)
    # the reloaded model scores the targets exactly as the in-memory one did
    texts, _ = resolve_targets(run_dir, TARGETS[:1])
    assert bits_per_byte(model, texts["code"]).bits_per_byte == pytest.approx(result.bpb["code"], rel=1e-5)


def test_intermediate_evals_feed_a_pruning_callback(run_dir):
    calls = []

    def prune_after_two(step, tokens, bpb):
        calls.append((step, tokens, dict(bpb)))
        return len(calls) == 2

    result = evaluate_recipe_output(
        run_dir,
        Mixture(weights={"code": 1.0}),
        TARGETS,
        tokens=60_000,
        eval_every=12_000,
        on_eval=prune_after_two,
        threads=1,
        intermediate_bytes=4_000,
    )
    assert result.pruned and len(calls) == 2 and len(result.curve) == 2
    assert calls[0][1] >= 12_000 and calls[1][1] >= 24_000 and result.tokens == calls[1][1] < 40_000
    assert set(calls[0][2]) == {"code", "books"} and result.curve[1].bpb == calls[1][2]
    assert result.model_dir is None


def test_rung_evals_happen_once_each_at_the_given_token_counts(run_dir):
    calls = []

    def record(step, tokens, bpb):
        calls.append(tokens)
        return False

    result = evaluate_recipe_output(
        run_dir,
        Mixture(weights={"code": 1.0}),
        TARGETS,
        tokens=54_000,
        eval_at=[18_000, 6_000],
        on_eval=record,
        threads=1,
        intermediate_bytes=4_000,
    )
    step_tokens = 8 * 256  # nano: a batch of 8 sequences of 256 tokens
    assert len(calls) == 2 and 6_000 <= calls[0] < 6_000 + step_tokens and 18_000 <= calls[1] < 18_000 + step_tokens
    assert not result.pruned and [p.tokens for p in result.curve] == calls
