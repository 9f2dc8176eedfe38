"""The WARC/ARC reader on every file of ../shared/data/web/warc (broken ones included) and the crawl sample."""

from __future__ import annotations

import gzip
import io
import json
from collections import Counter
from pathlib import Path

import pytest

from operators.readers.warc_reader import WarcReader, decode_html

# file -> reasons of all records read ("" = document); every record is a document or a ledger entry
EXPECTED = {
    "resiliparse_clueweb-quirk.warc.gz": {"": 29, "not_response": 1},
    "resiliparse_warcfile.warc.gz": {"": 16, "not_response": 34},
    "warcio_example-bad-non-chunked.warc.gz": {"": 1, "not_response": 5},
    "warcio_example-digest.warc": {"not_response": 4},
    "warcio_example-iana.org-chunked.warc": {"": 1, "not_response": 2},
    "warcio_example-resource.warc.gz": {"not_response": 3},
    "warcio_example-trunc.warc": {"not_response": 3, "truncated_record": 1},
    "warcio_example-wrong-chunks.warc.gz": {"truncated_record": 1, "not_response": 1},
    "warcio_example.arc": {"": 1, "not_response": 1},
    "warcio_example.arc.gz": {"": 1, "not_response": 1},
    "warcio_example.warc": {"": 1, "not_response": 5},
    "warcio_example.warc.gz": {"": 1, "not_response": 5},
    "warcio_post-test.warc.gz": {"not_html": 3, "not_response": 3},
}


def read(path: Path, **params) -> list[dict]:
    return list(WarcReader(params).read(str(path), "web"))


def by_id(rows: list[dict]) -> dict[str, dict]:
    ids = [r["id"] for r in rows]
    assert len(ids) == len(set(ids)), "ids must be unique within a file"
    return {r["id"]: r for r in rows}


def test_every_shared_warc_file_is_read_to_the_end(shared_data: Path) -> None:
    folder = shared_data / "web" / "warc"
    assert sorted(p.name for p in folder.iterdir()) == sorted(EXPECTED)
    for name, expected in EXPECTED.items():
        rows = read(folder / name)
        assert dict(Counter(r["_reason"] for r in rows)) == expected, name
        by_id(rows)


def test_broken_files_give_reasons_and_keep_reading(shared_data: Path) -> None:
    folder = shared_data / "web" / "warc"
    trunc = by_id(read(folder / "warcio_example-trunc.warc"))
    # the response's Content-Length was cut by 2 bytes: its payload misses the end of the gzip body
    assert trunc["warcio_example-trunc.warc@1197"]["_reason"] == "truncated_record"
    assert "604 bytes < HTTP Content-Length 606" in trunc["warcio_example-trunc.warc@1197"]["_detail"]
    assert trunc["warcio_example-trunc.warc@2566"]["_detail"] == "request"  # read on after it
    wrong = by_id(read(folder / "warcio_example-wrong-chunks.warc.gz"))
    assert wrong["warcio_example-wrong-chunks.warc.gz@0"]["_reason"] == "truncated_record"
    assert wrong["warcio_example-wrong-chunks.warc.gz@2009"]["_detail"] == "request"
    # one gzip member for the whole file (warcio refuses it): read as one stream, nothing lost
    single = by_id(read(folder / "warcio_example-bad-non-chunked.warc.gz"))
    page = single["warcio_example-bad-non-chunked.warc.gz@1197"]
    assert (
        page["_reason"] == ""
        and page["url"] == "http://example.com/"
        and "<title>Example Domain</title>" in page["text"]
    )
    post = read(folder / "warcio_post-test.warc.gz")
    assert {r["_detail"] for r in post if r["_reason"] == "not_html"} == {"application/json"}


def test_documents_carry_url_date_charset(shared_data: Path) -> None:
    folder = shared_data / "web" / "warc"
    iana = by_id(read(folder / "warcio_example-iana.org-chunked.warc"))["warcio_example-iana.org-chunked.warc@405"]
    assert iana["url"] == "http://www.iana.org/"
    meta = json.loads(iana["meta"])
    assert meta["date"] == "2017-03-06T16:54:09Z"
    assert (meta["charset"], meta["charset_source"]) == ("utf-8", "http")
    assert meta["content_type"] == "text/html; charset=UTF-8"
    assert "Internet Assigned Numbers Authority" in iana["text"]  # chunked transfer coding undone

    real = by_id(read(folder / "resiliparse_warcfile.warc.gz"))
    russian = real["resiliparse_warcfile.warc.gz@39775"]
    assert russian["url"] == "http://01spb.ru/company/"
    assert json.loads(russian["meta"])["charset"] == "cp1251"
    assert "<title>О компании - Стратегия пожарной безопасности</title>" in russian["text"]
    gb = json.loads(real["resiliparse_warcfile.warc.gz@163733"]["meta"])
    assert (gb["charset"], gb["charset_source"]) == ("gb18030", "http")  # gb2312 label -> its superset
    meta_declared = json.loads(real["resiliparse_warcfile.warc.gz@173990"]["meta"])
    assert (meta_declared["charset"], meta_declared["charset_source"]) == ("gb18030", "meta")

    clueweb = by_id(read(folder / "resiliparse_clueweb-quirk.warc.gz"))["resiliparse_clueweb-quirk.warc.gz@420"]
    assert json.loads(clueweb["meta"])["charset"] == "euc_jp"
    assert "ブラウニー ブリーフケース【ヘッドポーター HEADPORTER 吉田かばん】" in clueweb["text"]


def test_digest_checking_flags_clueweb_quirk(shared_data: Path) -> None:
    # ClueWeb09 files carry digests that do not match their records: off by default, as in warcio
    rows = read(shared_data / "web" / "warc" / "resiliparse_clueweb-quirk.warc.gz", check_digests=True)
    assert Counter(r["_reason"] for r in rows) == {"digest_mismatch": 29, "not_response": 1}
    good = read(shared_data / "web" / "warc" / "warcio_example-iana.org-chunked.warc", check_digests=True)
    assert Counter(r["_reason"] for r in good) == {"": 1, "not_response": 2}


def test_crawl_sample_all_418_pages(shared_data: Path) -> None:
    rows = read(shared_data / "web" / "crawl_sample.warc.gz")
    assert len(rows) == 418 and all(r["_reason"] == "" for r in rows)
    assert len({r["url"] for r in rows}) == 418
    sources = Counter(json.loads(r["meta"])["charset_source"] for r in rows)
    assert sources["meta"] > 350 and sources["http"] == 0  # the sample's HTTP headers name no charset
    latin = [r for r in rows if json.loads(r["meta"])["charset"] == "cp1252"]
    assert len(latin) == 6 and all("\ufffd" not in r["text"] for r in latin)


def test_damaged_copies_read_as_far_as_possible(shared_data: Path, tmp_path: Path) -> None:
    data = (shared_data / "web" / "crawl_sample.warc.gz").read_bytes()
    cut = tmp_path / "cut.warc.gz"
    cut.write_bytes(data[: len(data) // 2])
    rows = read(cut)
    assert Counter(r["_reason"] for r in rows) == {"": 227, "truncated_record": 1}
    assert rows[-1]["_reason"] == "truncated_record"

    flipped = bytearray(data)
    flipped[len(data) // 3] ^= 0xFF
    bad = tmp_path / "flipped.warc.gz"
    bad.write_bytes(bytes(flipped))
    rows = read(bad)
    assert Counter(r["_reason"] for r in rows) == {"": 417, "corrupt_gzip": 1}  # only the damaged record lost

    plain = (shared_data / "web" / "warc" / "warcio_example.warc").read_bytes()
    junk = tmp_path / "junk.warc"
    junk.write_bytes(plain[:1197] + b"THIS IS NOT A WARC RECORD\r\n\r\n" + plain[1197:])
    rows = read(junk)
    assert Counter(r["_reason"] for r in rows) == {"": 1, "not_response": 5, "malformed_record": 1}

    empty = tmp_path / "empty.warc"
    empty.write_bytes(b"")
    assert [r["_reason"] for r in read(empty)] == ["empty_file"]
    notwarc = tmp_path / "notes.warc"
    notwarc.write_bytes(b"hello world\n" * 3)
    assert [r["_reason"] for r in read(notwarc)] == ["malformed_record"]


def test_status_and_content_type_records(tmp_path: Path) -> None:
    """Records written with warcio's own writer: a 404, an image, a page in an undeclared charset."""
    from warcio.statusandheaders import StatusAndHeaders
    from warcio.warcwriter import WARCWriter

    path = tmp_path / "mixed.warc.gz"
    page = "<html><body><p>Größenwahn – ein Überblick über Ärger</p></body></html>".encode("cp1252")
    with open(path, "wb") as fh:
        writer = WARCWriter(fh, gzip=True)
        for url, status, ctype, body in [
            ("http://example.org/missing", "404 Not Found", "text/html", b"<html>gone</html>"),
            ("http://example.org/logo.png", "200 OK", "image/png", b"\x89PNG\r\n"),
            ("http://example.org/de", "200 OK", "text/html", page),
        ]:
            headers = StatusAndHeaders(status, [("Content-Type", ctype)], protocol="HTTP/1.1")
            writer.write_record(
                writer.create_warc_record(url, "response", payload=io.BytesIO(body), http_headers=headers)
            )
    rows = read(path)
    assert [r["_reason"] for r in rows] == ["http_status:404", "not_html", ""]
    meta = json.loads(rows[2]["meta"])
    assert meta["charset_source"] == "detected"
    assert "Größenwahn – ein Überblick über Ärger" in rows[2]["text"]


NATSUME = "吾輩は猫である。名前はまだ無い。どこで生れたかとんと見当がつかぬ。"


@pytest.mark.parametrize(
    ("raw", "header", "expected"),
    [
        ("café".encode("utf-8-sig"), None, ("café", "utf-8-sig", "bom")),
        ("<meta charset=iso-8859-1>café".encode("cp1252"), None, ("<meta charset=iso-8859-1>café", "cp1252", "meta")),
        (b"plain", "us-ascii", ("plain", "cp1252", "http")),
        ("naïve".encode(), "iso-8859-1", ("naïve", "utf-8", "utf8")),  # UTF-8 mislabelled as Latin-1
        (b"caf\xe9 \xff", "utf-8", ("caf\ufffd \ufffd", "utf-8", "declared_lossy")),
        (NATSUME.encode("shift_jis"), "bogus-label", (NATSUME, "cp932", "detected")),
    ],
)
def test_decode_html_rules(raw: bytes, header: str | None, expected: tuple[str, str, str]) -> None:
    assert decode_html(raw, header) == expected


def test_real_pages_declaring_latin1(shared_data: Path) -> None:
    raw = gzip.decompress((shared_data / "web" / "trafilatura_eval" / "html" / "tfs0154.html.gz").read_bytes())
    text, codec, source = decode_html(raw)
    assert (codec, source) == ("cp1252", "meta")
    assert "Viele Studierende sind noch verzweifelt auf Wohnungssuche" in text and "\ufffd" not in text
