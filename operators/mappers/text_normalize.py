"""Unicode and whitespace normalisation, with mojibake repair (ftfy)."""

from __future__ import annotations

import re
import unicodedata
from functools import cache

import numpy as np
from pydantic import Field

from operators.core.base import Batch, Mapper, OperatorParams, register

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_SPACES = re.compile(r"[ \t\u00a0\u2000-\u200b\u202f\u205f\u3000]+")
_BLANK_LINES = re.compile(r"\n{3,}")


@cache
def _mojibake_config():
    """ftfy's encoding repairs only, as datatrove's ``FTFYFormatter`` turns them on; its
    formatting changes (HTML unescaping, quote uncurling, width/ligature folding, line breaks,
    normalisation) stay off: they would rewrite code and text that is not broken."""
    from ftfy import TextFixerConfig

    return TextFixerConfig(
        unescape_html=False,
        remove_terminal_escapes=False,
        fix_encoding=True,
        restore_byte_a0=True,
        replace_lossy_sequences=True,
        decode_inconsistent_utf8=True,
        fix_c1_controls=True,
        fix_latin_ligatures=False,
        fix_character_width=False,
        uncurl_quotes=False,
        fix_line_breaks=False,
        fix_surrogates=True,
        remove_control_chars=False,
        normalization=None,
        explain=False,
    )


def _fix_mojibake(text: str) -> str:
    """``ftfy.fix_text`` with ``_mojibake_config``, which repairs each line on its own: only the
    lines with a non-ASCII character are given to it, as every repair enabled there needs one."""
    import ftfy

    lines = text.split("\n")
    config = _mojibake_config()
    fixed = [line if line.isascii() else ftfy.fix_text(line, config=config) for line in lines]
    return "\n".join(fixed)


@register
class TextNormalize(Mapper):
    """Mojibake repair (``fix_mojibake``: ftfy, Speer 2019, with the encoding fixes datatrove's
    ``FTFYFormatter`` applies for FineWeb-2, e.g. ``FÃ¼r`` -> ``Für``, ``donâ€™t`` -> ``don’t``),
    Unicode normalisation (NFC by default), control-character removal, trailing spaces stripped
    from every line and more than two consecutive newlines collapsed to two. Indentation is kept
    (code depends on it); ``collapse_spaces`` also squeezes runs of spaces inside lines.
    Documents left empty are dropped as ``empty_after_normalize``."""

    name = "text_normalize"
    reasons = ("empty_after_normalize",)

    class Params(OperatorParams):
        fix_mojibake: bool = True
        form: str = Field("NFC", pattern="^(NFC|NFKC|NFD|NFKD)$", description="unicodedata normal form")
        strip_control: bool = True
        collapse_whitespace: bool = True
        collapse_spaces: bool = False

    def normalize(self, text: str) -> str:
        p = self.params
        if p.fix_mojibake and not text.isascii():
            text = _fix_mojibake(text)
        text = unicodedata.normalize(p.form, text.replace("\r\n", "\n").replace("\r", "\n"))
        if p.strip_control:
            text = _CONTROL.sub("", text)
        if p.collapse_spaces:
            text = _SPACES.sub(" ", text)
        if p.collapse_whitespace:
            text = _BLANK_LINES.sub("\n\n", "\n".join(line.rstrip() for line in text.split("\n")))
        return text.strip("\n").rstrip()

    def map(self, batch: Batch) -> Batch:
        texts = np.array([self.normalize(t) for t in batch["text"]], dtype=object)
        reasons = np.where(texts == "", "empty_after_normalize", "").astype(object)
        return {"text": texts, "_reason": reasons}
