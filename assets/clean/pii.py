"""PII redaction: personal data in message text becomes a typed placeholder. Framework-free.

A rewrite in the sense of datatrove's ``formatters/pii.py``: it never rejects, it replaces and counts.
:func:`redact` finds, in this order (a found span becomes a placeholder before the next type looks):

- ``email`` → ``<EMAIL>``: ``local@domain.tld``. Addresses at domains reserved for documentation
  (example.com/.net/.org and the .example, .test, .invalid, .localhost top-level domains; RFC 2606,
  RFC 6761) belong to nobody and are kept.
- ``iban`` → ``<IBAN>``: two capital letters, two digits and 11-30 letters or digits, plain or in groups
  of four, that pass the country's format and the ISO 13616 mod-97 check (``stdnum.iban``).
- ``card`` → ``<CARD>``: 13-19 digits, plain or in groups of four (or 4-6-5, American Express) split by
  one space or hyphen, starting with 2-6 (the issuer ranges of the card networks) and passing the Luhn
  check (``stdnum.luhn``).
- ``ip`` → ``<IP>``: IPv4 and IPv6 addresses (``ipaddress``) that are globally routable (for IPv6,
  global unicast 2000::/3) and not multicast. Private, loopback, link-local and documentation addresses
  (192.168.1.1, 127.0.0.1, 2001:db8::1) identify nobody and fill networking answers, so they are kept;
  so is a dotted number after "version", "v", "release" or "build" (a bare four-part version number is
  an address as far as text can tell, and is redacted when it is a public one).
- ``phone`` → ``<PHONE>``, conservatively, one of: a ``+`` and a country code followed by 8-15 digits in
  all, in groups split by one space, hyphen or dot, or in parentheses (``+44 20 7946 0958``,
  ``+1 (212) 555-0182``); a North American number written with separators, area code and exchange not
  starting with 0 or 1 (``(212) 555-0182``, ``212-555-0182``, ``212.555.0182``); or 7-15 digits with
  separators right after a phone word (``phone``, ``tel``, ``mobile``, ``fax``, ``call me at``,
  ``Telefon``, ``teléfono``, ``téléphone``... within 20 characters), unless they read as a date. Years,
  prices, measurements (``103 °C``), version strings and plain runs of digits never match.

:func:`pii_rewrite` is the cleaning step; :func:`redact_rejected` redacts rejected rows, their ``raw``
input text included.
"""

from __future__ import annotations

import ipaddress
import re
from collections import Counter
from collections.abc import Callable, Iterable, Sequence

from stdnum import iban, luhn

from assets.clean.steps import RewriteFn, Row, each_content

PII_TYPES = ("email", "phone", "card", "iban", "ip")
PLACEHOLDERS = {kind: f"<{kind.upper()}>" for kind in PII_TYPES}

_EMAIL = re.compile(
    r"(?<![\w.%+-])[\w%+-]+(?:\.[\w%+-]+)*@((?:[^\W_](?:[\w-]{0,61}[^\W_])?\.)+[^\W\d_]{2,63})(?![\w-])"
)
_DOCUMENTATION_DOMAINS = ("example.com", "example.net", "example.org")
_DOCUMENTATION_TLDS = ("example", "test", "invalid", "localhost")

_IBAN = re.compile(r"(?<![\w-])[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?(?![\w-])")

# Not after "DE89 ": the digits of an IBAN that failed its check are no card either.
_CARD = re.compile(r"(?<![\w+.,-])(?<![A-Z]{2}\d{2} )\d(?:[ -]?\d){12,18}(?![\w-]|[.,]\d)")
_CARD_LAYOUT = re.compile(
    r"\d{13,19}|\d{4}([ -])\d{4}(?:\1\d{4}){1,2}(?:\1\d{1,4})?|\d{4}([ -])\d{6}\2\d{4,5}"
)

_IPV4 = re.compile(r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?![\w]|\.\d)")
_IPV6 = re.compile(r"(?<![\w:.])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?![\w:])")
_GLOBAL_UNICAST = ipaddress.IPv6Network("2000::/3")
_VERSION_BEFORE = re.compile(r"\b(?:version|ver\.?|v|release|build)\s*$", re.IGNORECASE)

_PHONE_INTERNATIONAL = re.compile(r"(?<![\w+])\+\d{1,3}(?:[ .-]?(?:\(\d{1,5}\)|\d{1,5})){1,6}(?![\w]|[.,]\d)")
_PHONE_NORTH_AMERICA = re.compile(
    r"(?<![\w+.,-])(?:1[-. ]?)?"  # an optional country code 1
    r"(?:\([2-9]\d\d\) ?[2-9]\d\d[-. ]|[2-9]\d\d([-. ])[2-9]\d\d\1)\d{4}"  # (212) 555-, 212-555-
    r"(?![\w-]|[.,]\d)"
)
_PHONE_WORDS = (
    r"phone|telephone|tel|mobile|cell|fax|whatsapp|call me at|call us at|reach me at|text me at"
    r"|telefon|handy|tel[eé]fono|m[oó]vil|t[eé]l[eé]phone|portable"
)
_PHONE_AFTER_WORD = re.compile(
    rf"\b(?:{_PHONE_WORDS})\b[^\d\n]{{0,20}}?(?<![\w+])(\(?\d[\d ./()-]{{5,22}}\d)(?![\w]|[.,]\d)",
    re.IGNORECASE,
)
_DATE = re.compile(r"\d{4}[-./]\d{1,2}[-./]\d{1,2}|\d{1,2}[-./]\d{1,2}[-./]\d{2,4}")


def redact(text: str, types: Iterable[str] = PII_TYPES) -> tuple[str, Counter[str]]:
    """``text`` with every PII span of ``types`` replaced by its placeholder, and the count by type."""
    counts: Counter[str] = Counter()
    wanted = set(types)
    for kind, find in _FINDERS:
        if kind in wanted:
            text = find(text, counts)
    return text, counts


def pii_rewrite(types: Sequence[str]) -> RewriteFn:
    """The cleaning step: :func:`redact` on every message; counts are ``{type: spans}``."""
    return each_content(lambda text: redact(text, types))


def redact_rejected(rows: Sequence[Row], types: Sequence[str]) -> tuple[list[Row], Counter[str]]:
    """Rejected rows with their ``raw`` input text, ``detail`` and messages redacted (new dicts), and the
    counts by type. Rows rejected after the redaction step already have redacted messages; the ``raw``
    column and rows rejected before it (ingest errors, invisible-only turns, failed validation) do not.
    Ids are left alone: they tie every raw row to its one output."""
    counts: Counter[str] = Counter()
    redacted = []
    for row in rows:
        new = dict(row)
        for column in ("raw", "detail"):  # a detail may quote the row (validation, ingest errors)
            if isinstance(row.get(column), str):
                new[column], found = redact(row[column], types)
                counts.update(found)
        messages = row.get("messages")
        if isinstance(messages, list) and all(
            isinstance(m, dict) and isinstance(m.get("content"), str) for m in messages
        ):
            new["messages"] = []
            for message in messages:
                content, found = redact(message["content"], types)
                new["messages"].append({**message, "content": content})
                counts.update(found)
        redacted.append(new)
    return redacted, counts


def _replace(kind: str, pattern: re.Pattern[str], keep: Callable[[re.Match[str]], bool]) -> _Finder:
    def find(text: str, counts: Counter[str]) -> str:
        def substitute(match: re.Match[str]) -> str:
            if keep(match):
                return match.group()
            counts[kind] += 1
            return PLACEHOLDERS[kind]

        return pattern.sub(substitute, text)

    return find


def _keep_email(match: re.Match[str]) -> bool:
    domain = match.group(1).lower()
    return domain.endswith(tuple(f".{tld}" for tld in _DOCUMENTATION_TLDS)) or any(
        domain == reserved or domain.endswith(f".{reserved}") for reserved in _DOCUMENTATION_DOMAINS
    )


def _find_iban(text: str, counts: Counter[str]) -> str:
    def substitute(match: re.Match[str]) -> str:
        # A word of capitals after the number can look like its last group: try shorter spans too.
        candidate = match.group()
        while candidate:
            if iban.is_valid(candidate):
                counts["iban"] += 1
                return PLACEHOLDERS["iban"] + match.group()[len(candidate) :]
            candidate = candidate.rpartition(" ")[0]
        return match.group()

    return _IBAN.sub(substitute, text)


def _keep_card(match: re.Match[str]) -> bool:
    number = match.group()
    digits = re.sub(r"\D", "", number)
    return not (_CARD_LAYOUT.fullmatch(number) and digits[0] in "23456" and luhn.is_valid(digits))


def _keep_ip(match: re.Match[str]) -> bool:
    if _VERSION_BEFORE.search(match.string, 0, match.start()):
        return True
    try:
        address = ipaddress.ip_address(match.group())
    except ValueError:
        return True
    if address.version == 6 and address not in _GLOBAL_UNICAST:
        return True
    return not address.is_global or address.is_multicast


def _keep_international_phone(match: re.Match[str]) -> bool:
    return not 8 <= sum(char.isdigit() for char in match.group()) <= 15


def _find_phone_after_word(text: str, counts: Counter[str]) -> str:
    def substitute(match: re.Match[str]) -> str:
        number = match.group(1)
        digits = sum(char.isdigit() for char in number)
        if not 7 <= digits <= 15 or _DATE.search(number):
            return match.group()
        counts["phone"] += 1
        start = match.start(1) - match.start()
        return match.group()[:start] + PLACEHOLDERS["phone"]

    return _PHONE_AFTER_WORD.sub(substitute, text)


_Finder = Callable[[str, Counter[str]], str]

_FINDERS: tuple[tuple[str, _Finder], ...] = (
    ("email", _replace("email", _EMAIL, _keep_email)),
    ("iban", _find_iban),
    ("card", _replace("card", _CARD, _keep_card)),
    ("ip", _replace("ip", _IPV4, _keep_ip)),
    ("ip", _replace("ip", _IPV6, _keep_ip)),
    ("phone", _replace("phone", _PHONE_INTERNATIONAL, _keep_international_phone)),
    ("phone", _replace("phone", _PHONE_NORTH_AMERICA, lambda match: False)),
    ("phone", _find_phone_after_word),
)
