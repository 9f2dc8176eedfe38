"""WARC / ARC reader (``warcio``): HTML responses become documents, every other record a ledger entry.

Each record read ends as exactly one row. HTTP 200 ``response`` records (ARC records are converted to
WARC ``response`` records) whose content type is HTML become documents: ``text`` is the decoded HTML,
``url`` the WARC-Target-URI and ``meta`` holds ``date`` (WARC-Date), ``content_type``, ``charset``
(the codec used), ``charset_source`` and ``record_id``. Everything else is a ledger entry:

- ``not_response`` (detail: the WARC-Type, e.g. ``request``, ``warcinfo``, ``revisit``, ``metadata``);
- ``http_status:<code>`` for responses other than 200;
- ``not_html`` (detail: the content type) for non-HTML payloads;
- ``truncated_record``: the record ends before its WARC Content-Length (truncated file), its payload
  is shorter than the HTTP Content-Length, or the crawler set ``WARC-Truncated``;
- ``digest_mismatch``: with ``check_digests``, the WARC block or payload digest does not verify
  (off by default, as in warcio: ClueWeb09 files carry digests that never match);
- ``malformed_record``: headers that do not parse, a broken chunked/gzip HTTP body; reading resumes
  at the next ``WARC/1.x`` header line, so one bad record never hides the rest of the file;
- ``corrupt_gzip``: the compressed stream itself is damaged (reading resumes at the next gzip member);
- ``empty_file`` / ``unreadable_file``.

Gzipped files are read as one decompressed stream, so files whose gzip members do not align with
records (a single gzip member for the whole file, a record split across members) are still read;
a record whose lengths do not add up is still reported (``truncated_record``). Ids are ``<file>@<offset>`` with the record's offset in
the decompressed stream (``<file>@<member offset>+<offset>`` after resuming at a later gzip member).

Charset (WHATWG encoding sniffing, simplified): byte-order mark, then the HTTP ``charset``, then a
``<meta charset>``/``http-equiv`` or XML declaration in the first 4 KiB, then UTF-8; the first that
decodes without error wins, except that valid non-ASCII UTF-8 beats a declared single-byte charset
(UTF-8 served as "ISO-8859-1" is the commonest source of mojibake). Legacy labels map to the
superset browsers use (ISO-8859-1/ASCII -> windows-1252, GB2312/GBK -> GB18030, Shift_JIS -> cp932,
EUC-KR -> cp949). When none decodes, a declared charset is applied with replacement characters,
else ``charset_normalizer`` (a trafilatura dependency) guesses, else UTF-8 with replacement:
decoding never raises. ``meta.charset_source`` says which rule decided.
"""

from __future__ import annotations

import codecs
import contextlib
import io
import os
import re
import zlib
from collections.abc import Iterator
from functools import cache
from typing import Any, BinaryIO

from pydantic import Field

from operators.core.base import OperatorParams, Reader, register
from operators.readers.formats import document, rejected

WARC_REASONS = (
    "not_response",
    "http_status",
    "not_html",
    "truncated_record",
    "digest_mismatch",
    "malformed_record",
    "corrupt_gzip",
    "record_too_large",
    "empty_file",
    "unreadable_file",
)
HTML_TYPES = ("text/html", "application/xhtml+xml")
_GZIP_MAGIC = b"\x1f\x8b"
_WARC_LINE = re.compile(rb"(?:^|\n)WARC/1\.[01]\r?\n")
_META_CHARSET = re.compile(rb"""<meta[^>]{0,300}?charset\s*=\s*["']?\s*([A-Za-z0-9_\-:.]+)""", re.I)
_XML_ENCODING = re.compile(rb"""^\s*<\?xml[^>]{0,100}?encoding\s*=\s*["']([A-Za-z0-9_\-.]+)""", re.I)
_HTML_START = re.compile(rb"^\s*(?:<!--.*?-->\s*)*<(?:!doctype\s+html|html|head)\b", re.I | re.S)
# labels whose WHATWG decoder is a superset of the Python codec of the same name
_WHATWG_CODEC = {
    "ascii": "cp1252",
    "iso8859-1": "cp1252",
    "iso8859-9": "cp1254",
    "tis-620": "cp874",
    "iso8859-11": "cp874",
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "shift_jis": "cp932",
    "euc_kr": "cp949",
    "big5": "big5hkscs",
}
_BOMS = ((codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))


def codec_for(label: str | None) -> str | None:
    """The Python codec a browser would use for a charset label, or None for unknown labels."""
    if not label:
        return None
    label = label.strip().strip("\"'").lower()
    aliases = {"x-sjis": "shift_jis", "windows-874": "cp874", "x-user-defined": "cp1252", "unicode": "utf-8"}
    try:
        name = codecs.lookup(aliases.get(label, label)).name
    except LookupError:
        return None
    return _WHATWG_CODEC.get(name, name)


def sniff_charset(head: bytes) -> str | None:
    """The charset declared in a page's first 4 KiB (``<meta>`` or XML declaration), if any."""
    head = head[:4096]
    m = _XML_ENCODING.match(head) or _META_CHARSET.search(head)
    return m.group(1).decode("ascii", "replace") if m else None


def decode_html(raw: bytes, http_charset: str | None = None) -> tuple[str, str, str]:
    """Decode an HTML payload: returns ``(text, codec, source)``; never raises."""
    for bom, codec in _BOMS:
        if raw.startswith(bom):
            return raw.decode(codec, errors="replace"), codec, "bom"
    meta = codec_for(sniff_charset(raw))
    if meta and meta.startswith("utf-16"):
        meta = "utf-8"  # a <meta> read as ASCII cannot really be UTF-16 (WHATWG rule)
    candidates = [(codec_for(http_charset), "http"), (meta, "meta"), ("utf-8", "utf8")]
    declared = next((c for c, _ in candidates[:2] if c), None)
    if declared and _single_byte(declared) and not raw.isascii():
        candidates.insert(0, ("utf-8", "utf8"))  # UTF-8 mislabelled as Latin-1 & co.: UTF-8 wins
    for codec, source in candidates:
        if codec is None:
            continue
        try:
            return raw.decode(codec), codec, source
        except (UnicodeDecodeError, LookupError):
            continue
    if declared:
        return raw.decode(declared, errors="replace"), declared, "declared_lossy"
    from charset_normalizer import from_bytes

    best = from_bytes(raw[:65536]).best()
    if best is not None and (codec := codec_for(best.encoding)):
        return raw.decode(codec, errors="replace"), codec, "detected"
    return raw.decode("utf-8", errors="replace"), "utf-8", "utf8_lossy"


@cache
def _single_byte(codec: str) -> bool:
    """A codec mapping each byte to one character (windows-125x, ISO-8859-x, KOI8...)."""
    high = bytes(range(0x80, 0x100)).decode(codec, errors="replace")
    return len(high) == 0x80 and high.count("\ufffd") < 48


def _is_html(content_type: str, payload: bytes) -> bool:
    if content_type:
        return content_type.split(";", 1)[0].strip().lower() in HTML_TYPES
    return bool(_HTML_START.match(payload[:1024]))


class WarcParams(OperatorParams):
    max_record_bytes: int = Field(32 << 20, gt=0, description="larger HTML payloads are dropped as record_too_large")
    check_digests: bool = Field(False, description="verify WARC block/payload digests (digest_mismatch on failure)")


@register
class WarcReader(Reader):
    """WARC and ARC files, plain or gzip (``warcio``). One row per record: HTTP 200 HTML responses are
    documents (``text`` = decoded HTML, ``url``, ``meta`` with date/charset/content type); all other
    records are ledger entries with a reason. Decoding and recovery rules: see the module docstring."""

    name = "warc"
    extensions = (".warc", ".warc.gz", ".arc", ".arc.gz")
    reasons = WARC_REASONS
    Params = WarcParams

    def read(self, path: str, source: str) -> Iterator[dict[str, Any]]:
        try:
            with open(path, "rb") as fh:
                gzipped = fh.read(2) == _GZIP_MAGIC
        except OSError as err:
            yield rejected(path, 0, "unreadable_file", str(err))
            return
        rows = 0
        for row in self._read_stream(path, gzipped):
            rows += 1
            yield row
        if rows == 0:
            yield rejected(path, 0, "empty_file", "no WARC/ARC records")

    # ---- stream handling and resynchronisation -----------------------------------------------

    def _read_stream(self, path: str, gzipped: bool) -> Iterator[dict[str, Any]]:
        """Records from the start of the file; after a record whose headers do not parse, resume at
        the next WARC header line; after damaged compressed data, at the next gzip member."""
        member, start = 0, 0  # compressed offset of the stream's first member, decompressed offset
        while True:
            if start:
                start = _find_header(path, gzipped, member, start)
                if start is None:
                    return
            with open(path, "rb") as fh:
                stream = _GzipMembers(fh, member) if gzipped else fh
                _skip(stream, start)
                resume = yield from self._records(path, stream, start, f"{member}+" if member else "")
            if resume is None:
                return
            if resume[0] == "gzip":
                member = _next_gzip_member(path, resume[1])
                if member is None:
                    return
                start = 0
            else:
                start = resume[1]

    def _records(self, path: str, stream: Any, start: int, prefix: str) -> Iterator[dict[str, Any]]:
        """Yield rows from ``stream`` (positioned at decompressed offset ``start``); return None at
        the end, ``("warc", offset)`` or ``("gzip", member offset)`` where reading must resume."""
        from warcio.archiveiterator import ArchiveIterator

        p: WarcParams = self.params
        it = ArchiveIterator(stream, arc2warc=True, check_digests=p.check_digests)
        offset = start
        while True:
            try:
                with contextlib.redirect_stderr(io.StringIO()):  # warcio prints recoverable warnings
                    record = next(it)
                row = self._record_row(record, p)
                with contextlib.redirect_stderr(io.StringIO()):
                    it.read_to_end()
            except StopIteration:
                return None
            except GzipDamage as err:
                yield rejected(path, f"{prefix}{offset}", err.reason, _short(err))
                return ("gzip", stream.member + 1)
            except Exception as err:  # warcio: ArchiveLoadFailed, StatusAndHeadersParserException, ValueError...
                yield rejected(path, f"{prefix}{offset}", "malformed_record", _short(err))
                return ("warc", offset + 1)
            offset = it.member_info[0]
            yield _finish(row, path, f"{prefix}{offset}")
            offset = it.offset

    # ---- one record ----------------------------------------------------------------------------

    def _record_row(self, record: Any, p: WarcParams) -> dict[str, Any]:
        """A document, or ``{"_reason", "_detail"}`` for a record that is not one."""
        headers = record.rec_headers
        if record.rec_type != "response":
            return {"_reason": "not_response", "_detail": str(record.rec_type)}
        http = record.http_headers
        if http is None:
            return {"_reason": "malformed_record", "_detail": "response without HTTP headers"}
        status = http.get_statuscode() or "none"
        if status != "200":
            return {"_reason": f"http_status:{status}", "_detail": http.protocol + " " + (http.statusline or "")}
        payload = _read_all(record.raw_stream, p.max_record_bytes)
        if payload is None:
            return {"_reason": "record_too_large", "_detail": f"> {p.max_record_bytes} bytes"}
        content_type = http.get_header("Content-Type") or ""
        truncated = _truncation(record, payload)
        if truncated:
            return {"_reason": "truncated_record", "_detail": truncated}
        if record.digest_checker is not None and record.digest_checker.passed is False:
            return {"_reason": "digest_mismatch", "_detail": "; ".join(record.digest_checker.problems)[:300]}
        try:
            body = _decode_body(http, payload)
        except (ValueError, OSError, EOFError, zlib.error) as err:
            return {"_reason": "malformed_record", "_detail": f"HTTP body: {_short(err)}"}
        if not _is_html(content_type, body):
            return {"_reason": "not_html", "_detail": content_type or "no content type"}
        http_charset = re.search(r"charset\s*=\s*[\"']?([^\s;\"']+)", content_type, re.I)
        text, codec, charset_source = decode_html(body, http_charset.group(1) if http_charset else None)
        meta = {
            "date": headers.get_header("WARC-Date") or "",
            "content_type": content_type,
            "charset": codec,
            "charset_source": charset_source,
            "record_id": headers.get_header("WARC-Record-ID") or "",
        }
        return {"text": text, "meta": meta, "url": headers.get_header("WARC-Target-URI") or ""}


def _finish(row: dict[str, Any], path: str, offset: str) -> dict[str, Any]:
    """Turn a record's partial row into a reader row identified by ``<file>@<offset>``."""
    if row.get("_reason"):
        return rejected(path, offset, row["_reason"], row["_detail"])
    return document(f"{os.path.basename(path)}@{offset}", row["text"], row["meta"], row["url"])


def _read_all(stream: Any, limit: int) -> bytes | None:
    """The rest of ``stream``, or None when it is longer than ``limit`` (the rest is still consumed)."""
    chunks, size = [], 0
    while chunk := stream.read(1 << 16):
        size += len(chunk)
        if size <= limit:
            chunks.append(chunk)
    return b"".join(chunks) if size <= limit else None


def _truncation(record: Any, payload: bytes) -> str:
    """Why a response record is incomplete, or "" when it is not."""
    marker = record.rec_headers.get_header("WARC-Truncated")
    if marker:
        return f"WARC-Truncated: {marker}"
    missing = getattr(record.raw_stream, "limit", 0)
    if missing:
        return f"record ends {missing} bytes before its Content-Length"
    http = record.http_headers
    declared = http.get_header("Content-Length")
    chunked = http.get_header("Transfer-Encoding") is not None
    if declared and declared.strip().isdigit() and not chunked and len(payload) < int(declared):
        return f"payload {len(payload)} bytes < HTTP Content-Length {int(declared)}"
    return ""


def _decode_body(http: Any, payload: bytes) -> bytes:
    """Undo HTTP chunked transfer coding and gzip/deflate/br content coding, as warcio does."""
    from warcio.bufferedreaders import BufferedReader, ChunkedDataReader

    encoding = (http.get_header("Content-Encoding") or "").lower() or None
    if encoding not in BufferedReader.get_supported_decompressors():
        encoding = None
    if (http.get_header("Transfer-Encoding") or "").lower() == "chunked":
        return ChunkedDataReader(io.BytesIO(payload), decomp_type=encoding).read()
    if encoding:
        return BufferedReader(io.BytesIO(payload), decomp_type=encoding).read()
    return payload


class GzipDamage(OSError):
    """Compressed data that cannot be decompressed (``reason``: ``corrupt_gzip`` or ``truncated_record``)."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


class _GzipMembers:
    """Concatenated gzip members read as one stream, like ``gzip.GzipFile``, that also knows the
    compressed offset of the member it is in (``member``), so reading can resume after damage.
    Damage raises ``GzipDamage`` (not ``EOFError``, which warcio would take for a clean end)."""

    def __init__(self, fh: BinaryIO, start: int) -> None:
        fh.seek(start)
        self.fh = fh
        self.member = start
        self._next_in = start  # compressed offset of the next byte to read from fh
        self._pending = b""  # compressed bytes read but not yet decompressed
        self._out = b""
        self._pos = 0
        self._z = zlib.decompressobj(31)
        self._in_member = False
        self._error: GzipDamage | None = None

    def tell(self) -> int:
        return self._pos

    def read(self, size: int = -1) -> bytes:
        while (size < 0 or len(self._out) < size) and self._fill():
            pass
        out, self._out = (self._out, b"") if size < 0 else (self._out[:size], self._out[size:])
        self._pos += len(out)
        return out

    def _fill(self) -> bool:
        """Decompress one more piece into ``_out``; False at the clean end of the stream."""
        if self._error:
            raise self._error
        if not self._pending:
            self._pending = self.fh.read(1 << 16)
            if not self._pending:
                if self._in_member:
                    self._error = GzipDamage("file ends inside a gzip member", "truncated_record")
                    raise self._error
                return False
        data, base = self._pending, self._next_in
        if not self._in_member and not data.startswith(_GZIP_MAGIC):
            if data.strip(b"\x00\r\n ") == b"" and not self.fh.read(1):
                return False  # padding after the last member
            self._error = GzipDamage("no gzip member header where one should start", "corrupt_gzip")
            raise self._error
        try:
            self._out += self._z.decompress(data)
        except zlib.error as err:
            self._error = GzipDamage(str(err), "corrupt_gzip")
            raise self._error from None
        self._in_member = True
        self._pending = b""
        self._next_in = base + len(data)
        if self._z.eof:
            unused = self._z.unused_data
            self.member = self._next_in - len(unused)
            self._next_in = self.member
            self._pending, self._z, self._in_member = unused, zlib.decompressobj(31), False
        return True


def _skip(stream: Any, offset: int) -> None:
    """Read ``stream`` forward to decompressed ``offset``."""
    while offset > stream.tell() and stream.read(min(1 << 20, offset - stream.tell())):
        pass


def _find_header(path: str, gzipped: bool, member: int, start: int) -> int | None:
    """Decompressed offset of the first ``WARC/1.x`` header line at or after ``start``."""
    with open(path, "rb") as fh:
        stream = _GzipMembers(fh, member) if gzipped else fh
        try:
            _skip(stream, start)
            pos, tail = start, b""
            while chunk := stream.read(1 << 16):
                buf = tail + chunk
                m = _WARC_LINE.search(buf)
                if m:
                    return pos - len(tail) + m.start() + (buf[m.start() : m.start() + 1] == b"\n")
                tail = buf[-16:]
                pos += len(chunk)
        except GzipDamage:
            return None
    return None


def _next_gzip_member(path: str, after: int) -> int | None:
    """Compressed offset of the first gzip member header at or after ``after``."""
    with open(path, "rb") as fh:
        fh.seek(after)
        pos, tail = after, b""
        while chunk := fh.read(1 << 16):
            buf = tail + chunk
            hit = buf.find(b"\x1f\x8b\x08")
            if hit >= 0:
                return pos - len(tail) + hit
            tail = buf[-2:]
            pos += len(chunk)
    return None


def _short(err: BaseException) -> str:
    return f"{type(err).__name__}: {' '.join(str(err).split())}"[:300]
