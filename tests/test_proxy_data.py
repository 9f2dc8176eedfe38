"""Byte tokenizer, packing and the mixture sampler on the shared data (no training here)."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from proxy_helpers import domains_run, read_jsonl, write_source

from evaluators.packing import pack
from evaluators.sampler import SourcePool, load_pools, sample_mixture, water_fill
from evaluators.tokenizer import EOT, EOT_ID, PAD_ID, decode, encode, encode_document, hf_tokenizer, save_tokenizer
from operators import Mixture


def test_byte_tokenizer_round_trips_and_matches_its_hugging_face_twin(shared_data, tmp_path):
    from transformers import AutoTokenizer

    texts = [r["text"] for r in read_jsonl(shared_data / "domains" / "code_python_thealgorithms.jsonl", 5)]
    sentences = read_jsonl(shared_data / "langid" / "lingua_sentences.jsonl")
    texts += [r["text"] for r in sentences if r["lang"] in ("zh", "ar", "hi", "el")][::50]
    texts.append(f"a document that mentions {EOT} literally, and an emoji 🙂")
    save_tokenizer(tmp_path / "tok", model_max_length=256)
    loaded = AutoTokenizer.from_pretrained(str(tmp_path / "tok"))
    assert (loaded.bos_token_id, loaded.eos_token_id, loaded.pad_token_id) == (EOT_ID, EOT_ID, PAD_ID)
    assert len(loaded) == 258 and loaded.model_max_length == 256
    for text in texts:
        ids = encode(text)
        assert ids.tolist() == list(text.encode("utf-8"))  # id = byte value
        assert loaded.encode(text) == ids.tolist() == hf_tokenizer().encode(text)
        assert decode(ids) == text == loaded.decode(ids.tolist())
    assert encode_document("hé").tolist() == [EOT_ID, 104, 195, 169]
    assert decode([EOT_ID, 104, PAD_ID, 105]) == "hi"


def test_best_fit_truncates_only_documents_longer_than_the_context(shared_data):
    texts = [r["text"] for r in read_jsonl(shared_data / "domains" / "instruction_selfinstruct_human.jsonl")]
    lengths = np.array([len(t.encode("utf-8")) + 1 for t in texts])
    assert len(texts) == 427 and int(lengths.sum()) == 228_210
    concat, best = pack(texts, 512, "concat"), pack(texts, 512, "best_fit", seed=3)

    assert concat.stats.sequences == 446 and concat.stats.padding_tokens == 446 * 512 - 228_210 == 142
    assert concat.stats.truncated_documents == 290  # documents that straddle a 512-token cut
    assert best.stats.truncated_documents == int((lengths > 512).sum()) == 141
    assert best.stats.sequences == 450 and best.stats.padding_tokens == 2190
    assert best.stats.truncation_rate == pytest.approx(141 / 427)
    assert best.stats.padding_rate == pytest.approx(2190 / (450 * 512))
    for packed in (concat, best):  # no token lost or invented
        assert packed.tokens.shape == (packed.stats.sequences, 512)
        real = packed.tokens[packed.tokens != PAD_ID]
        assert Counter(real.tolist()) == Counter(np.concatenate([encode_document(t) for t in texts]).tolist())
    short = next(t for t in texts if 100 < len(t.encode("utf-8")) < 300)  # packed whole into one sequence
    rows = [bytes(r[r < 256].astype(np.uint8)) for r in best.tokens]
    assert sum(short.encode("utf-8") in r for r in rows) == 1
    # padding sits at the end of each best-fit sequence, after its documents
    for row in best.tokens:
        pads = np.flatnonzero(row == PAD_ID)
        assert not len(pads) or pads[0] == 512 - len(pads)


def test_water_fill_redistributes_what_a_capped_source_cannot_take():
    alloc = water_fill(100.0, np.array([0.5, 0.3, 0.2]), np.array([10.0, 1000.0, 1000.0]))
    assert alloc == pytest.approx([10.0, 54.0, 36.0])
    assert water_fill(100.0, np.array([1.0, 1.0]), np.array([10.0, 20.0])) == pytest.approx([10.0, 20.0])


@pytest.fixture(scope="module")
def run_dir(shared_data, tmp_path_factory):
    run = tmp_path_factory.mktemp("sampler_run")
    domains_run(run, shared_data, {"code": "code_python_thealgorithms.jsonl", "books": "books_gutenberg.jsonl"})
    legal = read_jsonl(shared_data / "domains" / "legal_spdx_license_texts.jsonl", 30)
    write_source(run, "legal", legal)
    return run


def test_sampler_is_deterministic_and_meets_the_budget(run_dir):
    pools = load_pools(run_dir)
    assert sorted(pools) == ["books", "code", "legal"] and len(pools["code"].ids) == 643
    mixture = Mixture(weights={"code": 0.6, "books": 0.4})
    a, b = sample_mixture(pools, mixture, 300_000, seed=7), sample_mixture(pools, mixture, 300_000, seed=7)
    c = sample_mixture(pools, mixture, 300_000, seed=8)
    assert np.array_equal(a.order, b.order) and not np.array_equal(a.order, c.order)
    assert a.stats["legal"].tokens == 0 and a.stats["legal"].documents == 0
    for name, share in (("code", 0.6), ("books", 0.4)):  # each source within one document of its share
        longest = int(pools[name].n_tokens.max())
        assert abs(a.stats[name].tokens - share * 300_000) <= longest / 2 + 1
        assert a.stats[name].unique_documents == a.stats[name].documents  # below one epoch: no repeats
    assert a.total_tokens == sum(len(t.encode()) + 1 for t in a.documents(pools))
    # a source added to the pool leaves the other sources' draws unchanged
    two = {k: pools[k] for k in ("code", "books")}
    assert sample_mixture(two, mixture, 300_000, seed=7).stats["code"].tokens == a.stats["code"].tokens


def test_a_recipe_that_drops_documents_trains_on_the_same_others_in_the_same_order(run_dir):
    """Common random numbers: the draw and the order are keyed by document id, so a step that removes
    documents changes the stream only by those documents and the ones that take their place."""
    pools = load_pools(run_dir)
    mixture = Mixture(weights={"code": 0.6, "books": 0.4})
    full = sample_mixture(pools, mixture, 300_000, seed=7)
    stream = [(full.sources[s], pools[full.sources[s]].ids[d]) for s, d in full.order]
    dropped = {doc for source, doc in stream if source == "code"}
    dropped = set(sorted(dropped)[::5])  # a fifth of the code documents the stream holds
    code = pools["code"]
    keep = ~np.isin(code.ids, np.array(sorted(dropped), dtype=object))
    smaller = {**pools, "code": SourcePool("code", code.ids[keep], code.texts[keep], code.weights[keep])}
    cut = sample_mixture(smaller, mixture, 300_000, seed=7)
    after = [(cut.sources[s], smaller[cut.sources[s]].ids[d]) for s, d in cut.order]
    kept = [item for item in stream if item[1] not in dropped]
    assert len(dropped) == 10 and set(kept) <= set(after)  # every document not dropped is drawn again
    assert [item for item in after if item in set(kept)] == kept  # ... in the same order
    taking_over = [item for item in after if item not in set(kept)]
    assert {source for source, _ in taking_over} == {"code"} and len(taking_over) == 4
    books = [item for item in stream if item[0] == "books"]
    assert [item for item in after if item[0] == "books"] == books  # books is untouched


def test_max_epochs_caps_a_small_source_and_the_rest_goes_elsewhere(run_dir):
    pools = load_pools(run_dir)
    legal_tokens = pools["legal"].tokens
    mixture = Mixture(weights={"legal": 0.5, "code": 0.5}, max_epochs=2)
    sample = sample_mixture(pools, mixture, 2_000_000, seed=0)
    legal = sample.stats["legal"]
    assert legal.capped and legal.tokens == 2 * legal_tokens and legal.epochs == pytest.approx(2.0)
    assert legal.documents == 2 * 30 and legal.unique_documents == 30
    code = sample.stats["code"]
    assert not code.capped and abs(code.tokens - (2_000_000 - 2 * legal_tokens)) <= pools["code"].n_tokens.max()
    assert code.epochs == pytest.approx(code.tokens / pools["code"].tokens) and code.target_tokens > 1_000_000
    everything = sample_mixture(pools, Mixture(weights={"legal": 1.0}, max_epochs=2), 2_000_000, seed=0)
    assert everything.total_tokens == 2 * legal_tokens < everything.budget  # all capped: a short stream


def test_document_weights_are_honoured(run_dir, tmp_path):
    table = load_pools(run_dir, ["code"])["code"]
    n = len(table.ids)
    weights = np.where(np.arange(n) % 3 == 0, 3.0, 1.0)
    weights[np.arange(n) % 3 == 1] = 0.0
    weights[5] = np.nan  # rows a weighting step did not cover count as 1
    write_source(
        tmp_path, "code", [{"id": i, "text": t} for i, t in zip(table.ids, table.texts, strict=True)], list(weights)
    )
    pool = load_pools(tmp_path)["code"]
    assert pool.weights[5] == 1.0
    sample = sample_mixture({"code": pool}, Mixture(max_epochs=8), 2 * pool.tokens, seed=1)
    copies = np.bincount(sample.order[:, 1], minlength=n)
    assert copies[np.arange(n) % 3 == 1].sum() == 0  # weight 0 is never drawn
    heavy = copies[np.arange(n) % 3 == 0].mean()
    light = copies[(np.arange(n) % 3 == 2)].mean()
    assert heavy / light == pytest.approx(3.0, rel=0.1)
    held = set(pool.ids[:10].tolist())
    kept = load_pools(tmp_path, exclude_ids={"code": held})["code"]
    assert len(kept.ids) == n - 10 and not held & set(kept.ids.tolist())
