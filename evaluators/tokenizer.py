"""The byte-level tokenizer every proxy shares: token id = UTF-8 byte value, plus two specials.

One fixed vocabulary for every recipe makes losses comparable in bits per byte whatever a recipe
did to the text. Ids 0-255 are the bytes themselves, so the training path encodes with
``str.encode`` and ``numpy`` alone; ``hf_tokenizer`` builds the identical mapping as a Hugging
Face fast tokenizer (a BPE model with no merges over the GPT-2 byte alphabet) so that lm-eval's
``hf`` model can load it from the saved proxy. Special-token strings inside documents stay bytes
(``split_special_tokens``), so both paths agree on every text.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np

EOT = "<|endoftext|>"
PAD = "<|pad|>"
EOT_ID = 256
"""Separates documents in the training stream and conditions the first byte of every document."""
PAD_ID = 257
VOCAB_SIZE = 258


def encode(text: str) -> np.ndarray:
    """The token ids of ``text`` (its UTF-8 bytes) as ``int64``."""
    return np.frombuffer(text.encode("utf-8"), dtype=np.uint8).astype(np.int64)


def encode_document(text: str) -> np.ndarray:
    """``EOT`` followed by the bytes of ``text``: the unit that packing places into sequences."""
    raw = text.encode("utf-8")
    ids = np.empty(len(raw) + 1, dtype=np.int64)
    ids[0] = EOT_ID
    ids[1:] = np.frombuffer(raw, dtype=np.uint8)
    return ids


def decode(ids: Iterable[int]) -> str:
    """Bytes back to text; special tokens are dropped, invalid UTF-8 becomes U+FFFD."""
    return bytes(int(i) for i in ids if 0 <= int(i) < 256).decode("utf-8", errors="replace")


def _gpt2_byte_alphabet() -> dict[int, str]:
    """GPT-2's reversible byte -> printable character map (the one ``tokenizers.ByteLevel`` uses)."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    chars = dict(zip(printable, printable, strict=True))
    extra = 0
    for b in range(256):
        if b not in chars:
            chars[b] = 256 + extra
            extra += 1
    return {b: chr(c) for b, c in chars.items()}


def hf_tokenizer(model_max_length: int = 1024):
    """The same tokenizer as a ``transformers`` fast tokenizer (no files, no download)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {char: b for b, char in _gpt2_byte_alphabet().items()}
    core = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    core.decoder = decoders.ByteLevel()
    core.add_special_tokens([EOT, PAD])
    tok = PreTrainedTokenizerFast(
        tokenizer_object=core,
        bos_token=EOT,
        eos_token=EOT,
        pad_token=PAD,
        model_max_length=model_max_length,
        split_special_tokens=True,
    )
    assert tok.convert_tokens_to_ids([EOT, PAD]) == [EOT_ID, PAD_ID]
    return tok


def save_tokenizer(folder: str | Path, model_max_length: int = 1024) -> None:
    """Write ``tokenizer.json`` + ``tokenizer_config.json`` into ``folder``."""
    hf_tokenizer(model_max_length).save_pretrained(str(folder))
