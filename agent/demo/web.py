"""The demo corpus's synthetic web crawl: a gzip WARC of noisy pages made from the corpus's own texts.

Nothing is fetched: every page is generated here, from texts the caller passes in (standard-library
code, docstrings, licences) and from sentences and boilerplate written for this module. What a
crawl holds, in controlled amounts:

- ``article``: a text in one of three site templates (cookie banner, navigation, sidebar of other
  posts, newsletter box, footer);
- ``near_duplicate``: an article republished on a mirror site with small edits (a line dropped,
  a few words changed, a "originally published" line) - ``near_duplicate_fraction`` of the articles;
- ``spam``: keyword stuffing with hidden text, and link farms;
- ``pii``: team pages, support-forum posts with server logs, comment threads - carrying generated
  e-mail addresses (reserved ``example.*`` domains), phone numbers from ranges reserved for fiction
  (NANP 555-01xx, Ofcom 020 7946 0xxx, ARCEP 01 99 00 xx xx) and random public IPv4 addresses;
- ``foreign``: German, French and Spanish pages (some served as ISO-8859-1);
- records a reader must refuse: a ``warcinfo`` record, ``request`` records, non-HTML responses
  (robots.txt, sitemap, JSON, CSS, PNG) and non-200 responses (301, 404, 500, 503).

``write_crawl`` returns one label per record: url, kind, and what a WARC reader should make of it
(``document``, ``not_response``, ``not_html``, ``http_status:<code>``), the ground truth tests and
benchmarks compare against.
"""

from __future__ import annotations

import datetime as dt
import html
import io
import ipaddress
import random
import struct
import uuid
import zlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ARTICLE_CHARS = 6000
"""An article shows at most this much of its text (cut at a line boundary)."""


@dataclass(frozen=True)
class Article:
    id: str
    title: str
    text: str
    kind: str  # code | docs | legal


@dataclass(frozen=True)
class Site:
    domain: str
    name: str
    style: int


@dataclass
class Page:
    url: str
    kind: str
    body: bytes
    status: str = "200 OK"
    content_type: str = "text/html; charset=utf-8"
    extra_headers: list[tuple[str, str]] = field(default_factory=list)
    label: dict[str, Any] = field(default_factory=dict)


SITES = (Site("pyhub.example", "PyHub", 0), Site("codenotes.example", "Code Notes", 1), Site("devjournal.example", "Dev Journal", 2))  # fmt: skip
MIRRORS = (Site("mirror-docs.example", "Mirror Docs", 1), Site("copypasta.example", "CopyPasta Snippets", 2))
NAV = ("Home", "Tutorials", "Reference", "Blog", "Forum", "Jobs", "About", "Contact", "Newsletter", "Log in")
COOKIES = (
    "We use cookies to give you the best experience on our website. By continuing to browse you agree to our use of cookies.",
    "This site uses cookies for analytics, personalised content and ads. Accept all or manage your preferences.",
    "Cookies help us deliver our services. By using our services, you agree to our use of cookies. Learn more.",
)
FOOTERS = (
    "All rights reserved. Privacy policy · Terms of use · Imprint · Sitemap",
    "Made with love by developers, for developers. Follow us on social media. Privacy · Terms · Cookie settings",
    "Content is provided as is. Advertise with us · Careers · Press · Privacy · Accessibility",
)
COMMENTS = (
    "Thanks, this helped a lot!",
    "Great write-up, bookmarked.",
    "Does this still work on the latest release?",
    "I had the same problem last week, this fixed it.",
    "Could you do a follow-up on the async version?",
)
FIRST = ("Anna", "Ben", "Carla", "David", "Elif", "Farid", "Greta", "Hugo", "Ines", "Jonas", "Kenji", "Lena", "Marco", "Nadia", "Oscar", "Priya")  # fmt: skip
LAST = ("Berger", "Costa", "Dubois", "Eriksen", "Fischer", "Garcia", "Hansen", "Ito", "Jansen", "Kowalski", "Lopez", "Moreau", "Novak", "Olsen", "Petrov", "Quinn")  # fmt: skip
ROLES = ("Lead developer", "Support engineer", "Community manager", "Technical writer", "Sales", "Office manager")
EMAIL_DOMAINS = ("example.com", "example.org", "example.net", "mail.example")
KEYWORDS = (
    "python tutorial", "free python course", "learn python fast", "best python ide", "python certification",
    "cheap web hosting", "python jobs remote", "download python free", "python cheat sheet", "make money coding",
)  # fmt: skip
SPAM_DOMAINS = ("best-deals.example", "top10-reviews.example", "cheap-hosting.example", "seo-links.example")
FOREIGN = {
    "de": (
        "Startseite · Anleitungen · Forum · Impressum · Datenschutz",
        "Wir verwenden Cookies, um Ihnen das beste Erlebnis auf unserer Website zu bieten.",
        (
            "In diesem Artikel zeigen wir, wie man mit Python eine kleine Anwendung schreibt.",
            "Zuerst installieren wir die benötigten Pakete und legen ein neues Projekt an.",
            "Die Standardbibliothek bietet bereits viele nützliche Module für den Alltag.",
            "Fehlermeldungen sollte man immer genau lesen, bevor man im Internet sucht.",
            "Mit einer virtuellen Umgebung bleiben die Abhängigkeiten sauber getrennt.",
            "Unsere Leser fragen oft, welche Entwicklungsumgebung für Anfänger geeignet ist.",
            "Tests helfen dabei, Änderungen am Code ohne Angst vorzunehmen.",
            "Am Ende des Kapitels finden Sie Übungen mit ausführlichen Lösungen.",
            "Die Dokumentation ist gut geschrieben, aber manchmal etwas knapp.",
            "Im nächsten Teil beschäftigen wir uns mit Dateien und regulären Ausdrücken.",
        ),
    ),
    "fr": (
        "Accueil · Tutoriels · Forum · Mentions légales · Confidentialité",
        "Nous utilisons des cookies pour améliorer votre expérience sur notre site.",
        (
            "Dans cet article, nous expliquons comment écrire une petite application en Python.",
            "Il faut d'abord installer les paquets nécessaires et créer un nouveau projet.",
            "La bibliothèque standard contient déjà de nombreux modules très utiles.",
            "Les messages d'erreur doivent toujours être lus avec attention avant de chercher ailleurs.",
            "Un environnement virtuel permet de bien séparer les dépendances de chaque projet.",
            "Nos lecteurs nous demandent souvent quel éditeur choisir pour débuter.",
            "Les tests permettent de modifier le code sans crainte de tout casser.",
            "À la fin du chapitre, vous trouverez des exercices corrigés en détail.",
            "La documentation est bien écrite, mais parfois un peu succincte.",
            "Dans la prochaine partie, nous verrons les fichiers et les expressions régulières.",
        ),
    ),
    "es": (
        "Inicio · Tutoriales · Foro · Aviso legal · Privacidad",
        "Utilizamos cookies para ofrecerle la mejor experiencia en nuestro sitio web.",
        (
            "En este artículo mostramos cómo escribir una pequeña aplicación con Python.",
            "Primero instalamos los paquetes necesarios y creamos un proyecto nuevo.",
            "La biblioteca estándar ya ofrece muchos módulos útiles para el día a día.",
            "Conviene leer siempre los mensajes de error con atención antes de buscar en internet.",
            "Con un entorno virtual las dependencias de cada proyecto quedan bien separadas.",
            "Nuestros lectores preguntan a menudo qué editor es adecuado para principiantes.",
            "Las pruebas ayudan a cambiar el código sin miedo a romperlo todo.",
            "Al final del capítulo encontrará ejercicios con soluciones detalladas.",
            "La documentación está bien escrita, aunque a veces es algo escueta.",
            "En la próxima parte trabajaremos con ficheros y expresiones regulares.",
        ),
    ),
}
EDITS = {"the": "this", "is": "was", "a": "one", "and": "plus", "returns": "gives back", "function": "routine"}


# ---- page bodies ------------------------------------------------------------------------------


def _excerpt(text: str, limit: int = ARTICLE_CHARS) -> str:
    if len(text) <= limit:
        return text
    cut = text.rfind("\n", 0, limit)
    return text[: cut if cut > limit // 2 else limit]


def _blocks(text: str) -> str:
    """Prose paragraphs become ``<p>``, indented or doctest blocks ``<pre>``."""
    out = []
    for para in text.split("\n\n"):
        if not para.strip():
            continue
        lines = para.split("\n")
        if any(line.startswith(("    ", "\t", ">>>")) for line in lines):
            out.append(f"<pre>{html.escape(para)}</pre>")
        else:
            out.append(f"<p>{html.escape(' '.join(line.strip() for line in lines))}</p>")
    return "\n".join(out)


def _article_body(a: Article) -> str:
    text = _excerpt(a.text)
    if a.kind == "code":
        intro = f"<p>Below is the source of <code>{html.escape(a.id)}</code> from the Python standard library, with our notes.</p>"
        return f'{intro}\n<pre><code class="language-python">{html.escape(text)}</code></pre>'
    return _blocks(text)


def _page(site: Site, title: str, body: str, rng: random.Random, others: Sequence[str] = ()) -> str:
    """A full HTML page: ``body`` inside the site's template with its boilerplate."""
    nav = "".join(f'<li><a href="/{n.lower().replace(" ", "-")}/">{n}</a></li>' for n in NAV[: 6 + site.style])
    popular = "".join(f'<li><a href="/post/{i}/">{html.escape(t)}</a></li>' for i, t in enumerate(others))
    cookie = f'<div class="cookie-banner" id="gdpr">{COOKIES[site.style]} <button>Accept all</button> <button>Reject</button></div>'
    header = f'<header><a class="logo" href="/">{site.name}</a><nav><ul>{nav}</ul></nav><form role="search"><input name="q" placeholder="Search"></form></header>'
    aside = (
        f'<aside class="sidebar"><h3>Popular posts</h3><ul>{popular}</ul>'
        '<div class="newsletter"><h3>Newsletter</h3><p>Get the best posts in your inbox every week.</p>'
        '<input type="email" placeholder="you@example.com"><button>Subscribe</button></div></aside>'
    )
    byline = f'<p class="byline">Posted by {rng.choice(FIRST)} {rng.choice(LAST)} · {rng.randint(2, 15)} min read</p>'
    main = f"<main><article><h1>{html.escape(title)}</h1>{byline}\n{body}\n</article></main>"
    footer = f"<footer><p>© {2019 + site.style} {site.name}. {FOOTERS[site.style]}</p></footer>"
    parts = [cookie, header, main, aside, footer] if site.style != 1 else [header, aside, main, footer, cookie]
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)} | {site.name}</title>'
        f'<meta name="viewport" content="width=device-width"></head>\n<body class="theme-{site.style}">\n'
        + "\n".join(parts)
        + "\n</body></html>\n"
    )


def _slug(text: str) -> str:
    return "-".join("".join(c if c.isalnum() else " " for c in text.lower()).split()[:8]) or "page"


def _person(rng: random.Random) -> tuple[str, str, str]:
    first, last = rng.choice(FIRST), rng.choice(LAST)
    email = f"{first.lower()}.{last.lower()}@{rng.choice(EMAIL_DOMAINS)}"
    return f"{first} {last}", email, _phone(rng)


def _phone(rng: random.Random) -> str:
    kind = rng.randrange(3)
    if kind == 0:
        return f"({rng.choice((212, 312, 415, 617, 206))}) 555-01{rng.randint(0, 99):02d}"
    if kind == 1:
        return f"+44 20 7946 0{rng.randint(0, 999):03d}"
    return f"01 99 00 {rng.randint(0, 99):02d} {rng.randint(0, 99):02d}"


def _public_ip(rng: random.Random) -> str:
    while True:
        ip = ipaddress.IPv4Address(rng.getrandbits(32))
        if ip.is_global and not ip.is_multicast:
            return str(ip)


def _near_duplicate(text: str, rng: random.Random, origin: str) -> str:
    """A republished copy: one line dropped, up to three words changed, a provenance line on top."""
    lines = text.split("\n")
    if len(lines) > 8:
        del lines[rng.randrange(len(lines))]
    spots = [(i, j) for i, line in enumerate(lines) for j, w in enumerate(line.split(" ")) if w in EDITS]
    for i, j in sorted(rng.sample(spots, min(3, len(spots))), reverse=True):
        words = lines[i].split(" ")
        words[j] = EDITS[words[j]]
        lines[i] = " ".join(words)
    return f"Originally published on {origin}.\n\n" + "\n".join(lines)


def _png() -> bytes:
    """A valid 1x1 grey PNG (the crawl's one image)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", 1, 1, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00\x80")) + chunk(b"IEND", b"")
    )


# ---- page kinds -------------------------------------------------------------------------------


def _article_pages(articles: list[Article], n: int, rng: random.Random) -> list[tuple[Page, Article, Site]]:
    titles = [a.title for a in articles]
    out = []
    for k, a in enumerate(rng.sample(articles, min(n, len(articles)))):
        site = SITES[k % len(SITES)]
        body = _article_body(a)
        if rng.random() < 0.2:
            picked = rng.sample(COMMENTS, 2)
            body += (
                '\n<section class="comments"><h2>2 comments</h2>'
                + "".join(f"<p>{c}</p>" for c in picked)
                + "</section>"
            )
        page = _page(site, a.title, body, rng, others=rng.sample(titles, min(5, len(titles))))
        url = f"https://{site.domain}/post/{k}/{_slug(a.title)}/"
        out.append((Page(url, "article", page.encode(), label={"source_id": a.id}), a, site))
    return out


def _near_duplicates(originals: list[tuple[Page, Article, Site]], fraction: float, rng: random.Random) -> list[Page]:
    out = []
    for i, (orig, a, site) in enumerate(rng.sample(originals, round(fraction * len(originals)))):
        mirror = MIRRORS[i % len(MIRRORS)]
        copy = Article(a.id, a.title, _near_duplicate(_excerpt(a.text), rng, site.domain), a.kind)
        page = _page(mirror, a.title, _article_body(copy), rng)
        url = f"https://{mirror.domain}/{_slug(a.title)}-{i}.html"
        out.append(Page(url, "near_duplicate", page.encode(), label={"source_id": a.id, "duplicate_of": orig.url}))
    return out


def _spam_pages(n: int, rng: random.Random) -> list[Page]:
    out = []
    for i in range(n):
        site = Site(SPAM_DOMAINS[i % len(SPAM_DOMAINS)], "Top Deals", i % 3)
        if i % 2 == 0:
            title = "Best Python Tutorial Free Download - Cheap Python Course Online Now"
            paras = [" ".join(rng.choice(KEYWORDS) for _ in range(rng.randint(25, 45))) for _ in range(4)]
            hidden = " ".join(rng.choice(KEYWORDS) for _ in range(80))
            body = "".join(f"<p>{p}!</p>" for p in paras) + f'<div style="display:none">{hidden}</div>'
            body += '<p><a href="/go">CLICK HERE for the best python tutorial free download</a></p>'
        else:
            title = "Python Resources Directory - Top Links"
            links = []
            for _ in range(rng.randint(80, 150)):
                kw = rng.choice(KEYWORDS)
                links.append(
                    f'<li><a href="https://{rng.choice(SPAM_DOMAINS)}/{_slug(kw)}-{rng.randint(1, 999)}">{kw}</a></li>'
                )
            body = f'<ul class="links">{"".join(links)}</ul>'
        url = f"https://{site.domain}/{_slug(title)}-{i}/"
        out.append(
            Page(
                url,
                "spam",
                _page(site, title, body, rng).encode(),
                label={"spam": "keywords" if i % 2 == 0 else "link_farm"},
            )
        )
    return out


def _team_page(rng: random.Random) -> tuple[str, str, Counter]:
    counts: Counter = Counter()
    entries = []
    for _ in range(rng.randint(4, 7)):
        name, email, phone = _person(rng)
        role = rng.choice(ROLES)
        entries.append(f'<h3>{name}</h3><p>{role}. Write to <a href="mailto:{email}">{email}</a> or call {phone}.</p>')
        counts.update(emails=1, phones=1)
    intro = "<p>We are a small team of developers and writers. Get in touch with any of us directly.</p>"
    return "Meet our team", intro + "".join(entries), counts


def _forum_page(rng: random.Random, thread: int) -> tuple[str, str, Counter]:
    name, email, phone = _person(rng)
    log = []
    for _ in range(rng.randint(4, 8)):
        when = f"2024-03-0{rng.randint(1, 9)} 0{rng.randint(0, 9)}:{rng.randint(10, 59)}:{rng.randint(10, 59)}"
        log.append(f"{when} WARNING connection reset by {_public_ip(rng)} port {rng.randint(1024, 65535)}")
    body = (
        "<p>Hi all, my asyncio server keeps dropping connections after a few minutes. This is what the log says:</p>"
        f"<pre>{chr(10).join(log)}</pre>"
        f"<p>Any idea what is going on? Thanks, {name}. If it is easier, mail me at {email} or call {phone}.</p>"
        "<p>Reply: have you checked the keep-alive settings of the load balancer in front of it?</p>"
    )
    title = f"ConnectionResetError when reading from a socket (thread {thread})"
    return title, body, Counter(emails=1, phones=1, ips=len(log))


def _comment_thread(rng: random.Random, docs: list[Article]) -> tuple[str, str, Counter]:
    a = rng.choice(docs)
    comments = []
    for _ in range(3):
        name, email, phone = _person(rng)
        comments.append(f"<p><b>{name}</b>: {rng.choice(COMMENTS)} Drop me a line at {email} or ring {phone}.</p>")
    body = _article_body(a) + '<section class="comments"><h2>Comments</h2>' + "".join(comments) + "</section>"
    return a.title, body, Counter(emails=3, phones=3)


def _pii_pages(n: int, docs: list[Article], rng: random.Random) -> list[Page]:
    """Team pages, forum threads with server logs and comment threads, in turn; the label counts
    the e-mail addresses, phone numbers and IPs each carries."""
    out = []
    for i in range(n):
        site = SITES[i % len(SITES)]
        kind = ("team", "forum", "comments")[i % 3]
        if kind == "team":
            title, body, counts = _team_page(rng)
        elif kind == "forum":
            title, body, counts = _forum_page(rng, i)
        else:
            title, body, counts = _comment_thread(rng, docs)
        label = {"pii": kind, "emails": counts["emails"], "phones": counts["phones"], "ips": counts["ips"]}
        out.append(
            Page(f"https://{site.domain}/{kind}/{i}/", "pii", _page(site, title, body, rng).encode(), label=label)
        )
    return out


def _foreign_pages(per_language: int, rng: random.Random) -> list[Page]:
    out = []
    for lang, (nav, cookie, sentences) in FOREIGN.items():
        for i in range(per_language):
            chosen = rng.sample(sentences, rng.randint(6, 9))
            title = chosen[0].rsplit(" ", 4)[0]
            paras = [" ".join(chosen[j : j + 3]) for j in range(0, len(chosen), 3)]
            latin = i % 3 == 2
            charset = "iso-8859-1" if latin else "utf-8"
            page = (
                f'<!DOCTYPE html>\n<html lang="{lang}"><head><meta charset="{charset}"><title>{title}</title></head>\n<body>'
                f'<div class="cookie">{cookie}</div><header><nav>{nav}</nav></header>'
                f"<main><article><h1>{title}</h1>{''.join(f'<p>{p}</p>' for p in paras)}</article></main>"
                f"<footer>{nav}</footer></body></html>\n"
            )
            ct = f"text/html; charset={charset.upper() if latin else charset}"
            url = f"https://{lang}.devjournal.example/artikel/{i}/"
            out.append(
                Page(url, "foreign", page.encode("cp1252" if latin else "utf-8"), content_type=ct, label={"lang": lang})
            )
    return out


def _refused_pages(rng: random.Random) -> list[Page]:
    """Responses a reader must not turn into documents: non-HTML payloads and non-200 statuses."""
    out = [
        Page(f"https://{s.domain}/robots.txt", "non_html", f"User-agent: *\nDisallow: /admin/\nSitemap: https://{s.domain}/sitemap.xml\n".encode(), content_type="text/plain")
        for s in SITES
    ]  # fmt: skip
    sitemap = '<?xml version="1.0" encoding="UTF-8"?><urlset><url><loc>https://pyhub.example/</loc></url></urlset>'
    out += [
        Page("https://pyhub.example/sitemap.xml", "non_html", sitemap.encode(), content_type="application/xml"),
        Page("https://codenotes.example/api/v1/status", "non_html", b'{"status": "ok", "posts": 1024}', content_type="application/json"),
        Page("https://devjournal.example/static/site.css", "non_html", b"body{font-family:sans-serif}.cookie-banner{position:fixed}", content_type="text/css"),
        Page("https://pyhub.example/img/logo.png", "non_html", _png(), content_type="image/png"),
    ]  # fmt: skip
    errors = (
        ("301 Moved Permanently", [("Location", "https://pyhub.example/")]),
        ("404 Not Found", []),
        ("404 Not Found", []),
        ("500 Internal Server Error", []),
        ("503 Service Unavailable", [("Retry-After", "120")]),
    )
    for i, (status, extra) in enumerate(errors):
        body = (
            f"<!DOCTYPE html><html><head><title>{status}</title></head><body><h1>{status}</h1></body></html>".encode()
        )
        url = f"https://{SITES[i % 3].domain}/old/page-{rng.randint(100, 999)}/"
        out.append(Page(url, "http_error", body, status=status, extra_headers=extra))
    return out


# ---- the WARC file ----------------------------------------------------------------------------


@dataclass
class CrawlPlan:
    """How many pages of each kind (``near_duplicate_fraction`` is of the articles)."""

    articles: int
    near_duplicate_fraction: float
    spam: int
    pii: int
    foreign_per_language: int
    requests: int = 5


def _expect(page: Page) -> str:
    code = page.status.split(" ", 1)[0]
    if code != "200":
        return f"http_status:{code}"
    return "document" if page.content_type.startswith("text/html") else "not_html"


def write_crawl(path: Path, articles: list[Article], plan: CrawlPlan, seed: int) -> list[dict[str, Any]]:
    """Write the crawl to ``path`` (gzip WARC, one gzip member per record); returns one label per
    record in file order. The same articles, plan and seed give the same bytes."""
    from warcio.statusandheaders import StatusAndHeaders
    from warcio.warcwriter import WARCWriter

    rng = random.Random(f"{seed}:web")
    originals = _article_pages(articles, plan.articles, rng)
    docs = [a for a in articles if a.kind == "docs"] or articles
    pages = [p for p, _, _ in originals] + _near_duplicates(originals, plan.near_duplicate_fraction, rng)
    pages += _spam_pages(plan.spam, rng) + _pii_pages(plan.pii, docs, rng)
    pages += _foreign_pages(plan.foreign_per_language, rng) + _refused_pages(rng)
    rng.shuffle(pages)
    requested = set(rng.sample(range(len(pages)), min(plan.requests, len(pages))))

    clock = dt.datetime(2024, 3, 1, 8, 0, 0)

    def warc_headers() -> dict[str, str]:
        nonlocal clock
        clock += dt.timedelta(seconds=rng.randint(1, 120))
        record_id = uuid.UUID(int=rng.getrandbits(128), version=4)
        return {"WARC-Record-ID": f"<urn:uuid:{record_id}>", "WARC-Date": clock.strftime("%Y-%m-%dT%H:%M:%SZ")}

    labels: list[dict[str, Any]] = []
    with open(path, "wb") as fh:
        writer = WARCWriter(fh, gzip=True)
        info = f"software: dataplan demo corpus\nformat: WARC File Format 1.0\nseed: {seed}\n".encode()
        writer.write_record(
            writer.create_warc_record(
                "",
                "warcinfo",
                payload=io.BytesIO(info),
                length=len(info),
                warc_content_type="application/warc-fields",
                warc_headers_dict={**warc_headers(), "WARC-Filename": path.name},
            )
        )
        labels.append({"url": "", "kind": "warcinfo", "expect": "not_response"})
        for i, page in enumerate(pages):
            if i in requested:
                target = page.url.split("/", 3)
                req = StatusAndHeaders(
                    f"GET /{target[3] if len(target) > 3 else ''} HTTP/1.1",
                    [("Host", target[2]), ("User-Agent", "dataplan-demo-crawler/1.0")],
                    is_http_request=True,
                )
                writer.write_record(
                    writer.create_warc_record(page.url, "request", http_headers=req, warc_headers_dict=warc_headers())
                )
                labels.append({"url": page.url, "kind": "request", "expect": "not_response"})
            headers = [
                ("Content-Type", page.content_type),
                ("Content-Length", str(len(page.body))),
                ("Server", "nginx"),
            ]
            http = StatusAndHeaders(page.status, headers + page.extra_headers, protocol="HTTP/1.1")
            record = writer.create_warc_record(
                page.url, "response", payload=io.BytesIO(page.body), length=len(page.body), http_headers=http, warc_headers_dict=warc_headers()
            )  # fmt: skip
            writer.write_record(record)
            labels.append({"url": page.url, "kind": page.kind, "expect": _expect(page), **page.label})
    return labels
