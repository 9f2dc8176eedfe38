"""PII redaction, FineWeb style: e-mail addresses, public IP addresses and phone numbers."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable

import numpy as np
from pydantic import Field

from operators.core.base import Batch, Mapper, OperatorParams, register

# datatrove PIIFormatter's e-mail pattern (RFC 5322 local part, dotted domain or bracketed IP)
EMAIL = re.compile(
    r"\b[a-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[a-z0-9!#$%&'*+/=?^_`{|}~-]+)*@(?:(?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?\.)+"
    r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?|\[(?:(?:25[0-5]|2[0-4][0-9]|[01]?[0-9][0-9]?)\.){3}(?:25[0-5]|2[0-4][0-9]|"
    r"[01]?[0-9][0-9]?|[a-z0-9-]*[a-z0-9]:)])",
    re.IGNORECASE,
)
# datatrove PIIFormatter's IPv4 pattern, bounded so that it does not cut digits out of longer numbers
IPV4 = re.compile(
    r"(?<![\d.])(?:(?:25[0-5]|2[0-4][0-9]|[01]?[0-9][0-9]?)\.){3}(?:25[0-5]|2[0-4][0-9]|[01]?[0-9][0-9]?)(?![\d]|\.\d)"
)
# candidate IPv6 addresses (full, compressed with ::, or with an embedded IPv4 tail); ipaddress validates
IPV6 = re.compile(r"(?<![\w:.])(?:[0-9a-f]{0,4}:){2,7}(?:[0-9a-f]{1,4}|(?:\d{1,3}\.){3}\d{1,3})?(?![\w:])", re.I)
# phone numbers in the shapes they are written in: NANP (US/CA), "+" international, and national
# numbers with a trunk "0" (EU style, incl. French pairs); a bare run of digits is never a phone number
PHONE = re.compile(
    r"(?<![\w+.\-/(])(?<!\d[ .\-])(?:"
    r"(?:\+?1[ .\-]?)?\(\d{3}\)[ .\-]?\d{3}[ .\-]\d{4}"  # (415) 555-0123, +1 (415) 555 0123
    r"|(?:\+?1[ .\-])?\d{3}([ .\-])\d{3}\1\d{4}"  # 415-555-0123, 1 415 555 0123 (one separator)
    r"|\+\d{1,3}(?:[ .\-]?\(\d{1,4}\))?(?:[ .\-]\d{1,5}){2,5}"  # +44 20 7946 0958, +49 (0)30 1234 5678
    r"|0[1-9](?:[ .\-]\d{2}){4}"  # 01 23 45 67 89
    r"|\(?0\d{1,4}\)?[ /\-]\d{3,8}(?:[ \-]\d{2,5}){0,2}"  # 030 1234567, 0171/1234567, 020 7946 0958
    r")(?![\w\-]|[.,]\d|[ .\-]\d)"  # not a piece of a longer run of numbers
)


def is_public_ip(candidate: str) -> bool:
    """A syntactically valid IPv4/IPv6 address that is globally routable (``ipaddress.is_global``):
    private, loopback, link-local, reserved and documentation ranges are left in the text. IPv6
    candidates need three groups (``1::`` is more likely a number than an address)."""
    if ":" in candidate and sum(bool(g) for g in re.split(r"[:.]", candidate)) < 3:
        return False
    try:
        return ipaddress.ip_address(candidate).is_global
    except ValueError:
        return False


def is_phone(candidate: str) -> bool:
    """8-15 digits after a ``+`` country code (E.164 allows 15), else 10-12 (9 would take US ZIP+4
    codes such as ``02111-1307``)."""
    digits = sum(ch.isdigit() for ch in candidate)
    return 8 <= digits <= 15 if candidate.startswith("+") else 10 <= digits <= 12


def is_email(candidate: str) -> bool:
    """The domain ends in a label with a letter (``popper.js@1.16.1`` is a package, not an address)."""
    domain = candidate.rsplit("@", 1)[1]
    return domain.startswith("[") or any(ch.isalpha() for ch in domain.rsplit(".", 1)[-1])


def replace_matches(
    pattern: re.Pattern, text: str, replacements: tuple[str, ...], valid: Callable[[str], bool] | None = None
) -> tuple[str, int]:
    """Replace each valid match with the next placeholder (cycling, restarting in every document,
    so the output does not depend on batch order); returns the text and the number replaced."""
    count = 0

    def sub(m: re.Match) -> str:
        nonlocal count
        if valid is not None and not valid(m.group(0)):
            return m.group(0)
        count += 1
        return replacements[(count - 1) % len(replacements)]

    return pattern.sub(sub, text), count


@register
class PiiRedact(Mapper):
    """Replaces personal data with placeholders, as FineWeb does with datatrove's ``PIIFormatter``
    (Penedo et al. 2024): e-mail addresses -> ``email@example.com`` / ``firstname.lastname@example.org``
    and public IP addresses -> datatrove's six non-responding addresses (cycled). Private, loopback
    and reserved addresses are kept (``only_public_ips``, datatrove's default). Beyond datatrove:
    IPv6 addresses (public ones only, same rule), phone numbers (NANP, ``+``country and trunk-0
    national formats, not part of a longer run of numbers; replaced by ``555-0100``, a number
    reserved for fiction), case-insensitive e-mail matching (datatrove's pattern is lowercase-only)
    and no e-mail match whose domain ends in digits (``popper.js@1.16.1``). Signals: ``pii_emails``,
    ``pii_ips``, ``pii_phones``, the number of replacements per document. Drops nothing."""

    name = "pii_redact"
    signals = {"pii_emails": "int64", "pii_ips": "int64", "pii_phones": "int64"}

    class Params(OperatorParams):
        emails: bool = True
        ips: bool = True
        phones: bool = True
        only_public_ips: bool = True
        email_replacement: tuple[str, ...] = Field(
            ("email@example.com", "firstname.lastname@example.org"), min_length=1
        )
        ip_replacement: tuple[str, ...] = Field(
            ("22.214.171.124", "126.96.36.199", "188.8.131.52", "184.108.40.206", "220.127.116.11", "18.104.22.168"),
            min_length=1,
        )
        ipv6_replacement: tuple[str, ...] = Field(("2001:db8::1",), min_length=1)
        phone_replacement: tuple[str, ...] = Field(("555-0100",), min_length=1)

    def redact(self, text: str) -> tuple[str, int, int, int]:
        """The redacted text and the numbers of e-mails, IPs and phone numbers replaced."""
        p = self.params
        emails = ips = ips6 = phones = 0
        ip_valid = is_public_ip if p.only_public_ips else _is_ip
        if p.emails:
            text, emails = replace_matches(EMAIL, text, p.email_replacement, is_email)
        if p.ips:
            text, ips = replace_matches(IPV4, text, p.ip_replacement, ip_valid)
            if ":" in text:
                text, ips6 = replace_matches(IPV6, text, p.ipv6_replacement, ip_valid)
        if p.phones:
            text, phones = replace_matches(PHONE, text, p.phone_replacement, is_phone)
        return text, emails, ips + ips6, phones

    def map(self, batch: Batch) -> Batch:
        n = len(batch["text"])
        texts = np.empty(n, dtype=object)
        counts = np.zeros((3, n), dtype=np.int64)
        for i, text in enumerate(batch["text"]):
            texts[i], counts[0, i], counts[1, i], counts[2, i] = self.redact(text)
        return {"text": texts, "pii_emails": counts[0], "pii_ips": counts[1], "pii_phones": counts[2]}


def _is_ip(candidate: str) -> bool:
    try:
        ipaddress.ip_address(candidate)
    except ValueError:
        return False
    return True
