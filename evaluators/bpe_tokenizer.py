"""A byte-level BPE tokenizer fitted on the task's own text, for the neural proxies.

At a few hundred thousand tokens a byte-level proxy hardly gets past byte statistics; a BPE
vocabulary lets the same budget cover ~3x more text and model words rather than spelling (4,096
ids: 3.4-3.7 bytes per token on the fitting sample, 2.4-2.8 on held-out text of other kinds). The
tokenizer is GPT-2's byte-level BPE (Radford et al. 2019; Sennrich et al. 2016 for BPE): GPT-2's
pre-tokenisation regex over its reversible byte alphabet, every byte in the base vocabulary (no
unknown token), no normaliser and no prefix space, so ``decode(encode(t)) == t`` for any text.
Special-token strings inside a document stay text (``encode_special_tokens``), as with the byte
tokenizer. It is fitted with Hugging Face ``tokenizers`` (``BpeTrainer``), which breaks ties
between equally frequent pairs deterministically: the same texts give the same merges and the same
``sha256`` in any process.

Losses stay comparable across tokenizers because they are reported in bits per *byte*
(``evaluators.bpb`` divides total nats by the UTF-8 bytes of the targets), whatever the tokens.

``fit_bpe(texts, vocab_size)`` fits one (a search fits it on the ``head`` of each source and
target); ``fit_on_files(paths, ...)`` fits one on a head sample of every file and keeps it in the
content-addressed cache ``$DATAPLAN_HOME/cache/tokenizers/<sha256>.json``, from which
``cached(sha256)`` reloads it.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np

from evaluators.tokenizer import EOT, PAD, PAD_ID, encode_document
from operators import read_texts, workspace

DEFAULT_VOCAB = 4096
SAMPLE_BYTES = 256 * 1024
"""Head sample per file that ``fit_on_files`` reads by default."""


class BpeTokenizer:
    """A fitted tokenizer (``tokenizers.Tokenizer``) and the bytes per token it achieved on its
    fitting sample (the factor that turns a token budget into a byte budget)."""

    def __init__(self, core, bytes_per_token: float) -> None:
        self.core = core
        self.core.encode_special_tokens = True
        self.bytes_per_token = float(bytes_per_token)
        self.vocab_size: int = core.get_vocab_size(with_added_tokens=True)
        self.eot_id: int = core.token_to_id(EOT)
        self.pad_id: int = core.token_to_id(PAD)
        self.sha256 = hashlib.sha256(self.to_json().encode("utf-8")).hexdigest()

    def to_json(self) -> str:
        """The canonical JSON (sorted keys, no spaces) that ``save`` writes and ``sha256`` hashes."""
        data = {"bytes_per_token": self.bytes_per_token, "tokenizer": json.loads(self.core.to_str())}
        return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)

    def encode(self, text: str) -> np.ndarray:
        """The token ids of ``text`` as ``int64``."""
        return np.asarray(self.core.encode(text, add_special_tokens=False).ids, dtype=np.int64)

    def encode_document(self, text: str) -> np.ndarray:
        """``EOT`` followed by the ids of ``text``: the unit that packing places into sequences."""
        return np.concatenate([[self.eot_id], self.encode(text)]).astype(np.int64)

    def decode(self, ids) -> str:
        """Ids back to text; special tokens are dropped."""
        return self.core.decode([int(i) for i in ids], skip_special_tokens=True)

    def hf_tokenizer(self, model_max_length: int = 1024):
        """The same tokenizer as a ``transformers`` fast tokenizer (what lm-eval's ``hf`` model loads)."""
        from tokenizers import Tokenizer
        from transformers import PreTrainedTokenizerFast

        return PreTrainedTokenizerFast(
            tokenizer_object=Tokenizer.from_str(self.core.to_str()),
            bos_token=EOT,
            eos_token=EOT,
            pad_token=PAD,
            model_max_length=model_max_length,
            split_special_tokens=True,
        )

    def save_pretrained(self, folder: str | Path, model_max_length: int = 1024) -> None:
        """Write the Hugging Face tokenizer files into ``folder`` (beside a saved model)."""
        self.hf_tokenizer(model_max_length).save_pretrained(str(folder))

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.to_json(), encoding="utf-8")
        return path

    @classmethod
    def load(cls, path: str | Path) -> BpeTokenizer:
        from tokenizers import Tokenizer

        data = json.loads(Path(path).read_text(encoding="utf-8"))
        return cls(Tokenizer.from_str(json.dumps(data["tokenizer"])), data["bytes_per_token"])


def fit_bpe(texts: Sequence[str], vocab_size: int = DEFAULT_VOCAB) -> BpeTokenizer:
    """A byte-level BPE with ``vocab_size`` ids (the 256 bytes, ``EOT``, ``PAD`` and the merges)
    fitted on ``texts``; ``bytes_per_token`` is measured on the same texts."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    if not any(texts):
        raise ValueError("fit_bpe needs some text to fit a vocabulary on")
    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        show_progress=False,
        special_tokens=[EOT, PAD],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    core.train_from_iterator(texts, trainer)
    n_tokens = sum(len(e.ids) for e in core.encode_batch(list(texts), add_special_tokens=False))
    n_bytes = sum(len(t.encode("utf-8")) for t in texts)
    return BpeTokenizer(core, n_bytes / max(n_tokens, 1))


def head_sample(path: str | Path, max_bytes: int = SAMPLE_BYTES) -> list[str]:
    """``head`` of the texts of ``path`` (any format ``read_texts`` reads): a deterministic sample
    of one file."""
    return head(read_texts([path]), max_bytes)


def head(texts: Iterable[str], max_bytes: int = SAMPLE_BYTES) -> list[str]:
    """The first ``max_bytes`` UTF-8 bytes of ``texts``, the last text cut at a character boundary."""
    out, used = [], 0
    for text in texts:
        raw = text.encode("utf-8")
        if used + len(raw) >= max_bytes:
            out.append(raw[: max_bytes - used].decode("utf-8", errors="ignore"))
            break
        out.append(text)
        used += len(raw)
    return out


def fit_on_files(
    paths: Sequence[str | Path], sample_bytes_per_file: int = SAMPLE_BYTES, vocab_size: int = DEFAULT_VOCAB
) -> BpeTokenizer:
    """``fit_bpe`` on ``head_sample`` of each file (in the order given), kept in the cache."""
    texts = [t for path in paths for t in head_sample(path, sample_bytes_per_file)]
    tokenizer = fit_bpe(texts, vocab_size)
    path = cache_path(tokenizer.sha256)
    if not path.is_file():
        tokenizer.save(path.with_name(f"{path.stem}.{os.getpid()}.tmp")).replace(path)
    return tokenizer


def cache_path(sha256: str) -> Path:
    return workspace() / "cache" / "tokenizers" / f"{sha256}.json"


def cached(sha256: str) -> BpeTokenizer:
    """The tokenizer with this ``sha256`` from the cache (``fit_on_files`` put it there)."""
    path = cache_path(sha256)
    if not path.is_file():
        raise FileNotFoundError(f"no tokenizer {sha256} in {path.parent}; fit it again with fit_on_files")
    return BpeTokenizer.load(path)


def document_encoder(tokenizer: BpeTokenizer | None = None) -> tuple[Callable[[str], np.ndarray], int]:
    """``encode_document`` and the pad id of a fitted ``tokenizer``, or of the byte tokenizer (None)."""
    return (tokenizer.encode_document, tokenizer.pad_id) if tokenizer else (encode_document, PAD_ID)
