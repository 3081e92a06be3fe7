"""PII redaction: personal data in text becomes a typed placeholder. Framework-free.

A rewrite in the sense of datatrove's ``formatters/pii.py``: it never rejects, it replaces and counts.
The ingest stage applies it to every text it writes to ``raw_examples`` (messages, tool calls, tool
definitions, the original ``raw`` text and ``error`` details), so no versioned dataset downstream of the
input file holds the personal data this module finds. :func:`redact` finds, in this order (a found span
becomes a placeholder before the next type looks):

- ``email`` → ``<EMAIL>``: ``local@domain.tld``. Addresses at domains reserved for documentation
  (example.com/.net/.org and the .example, .test, .invalid, .localhost top-level domains; RFC 2606,
  RFC 6761) belong to nobody and are kept.
- ``iban`` → ``<IBAN>``: two letters, two digits and 11-30 letters or digits (either case), plain or in
  groups of four, that pass the country's format and the ISO 13616 mod-97 check (``stdnum.iban``).
- ``card`` → ``<CARD>``: 13-19 digits, plain or in groups of four (or 4-6-5, American Express) split by
  one space, hyphen, dot or slash (mixed too), starting with 2-6 (the issuer ranges of the card
  networks) and passing the Luhn check (``stdnum.luhn``).
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

Hidden characters do not hide PII: the patterns look at the text without Unicode format characters
(category Cf: zero-width space, soft hyphen, word joiner, BOM, bidi controls) and control characters
other than tab and line breaks, and a found span is replaced in the original text together with the
hidden characters inside it. The patterns also see each character in its NFKC compatibility form, so
full-width ``ｊｏｈｎ＠ｇｍａｉｌ．ｃｏｍ`` and ``４１１１...`` are found too (and replaced whole). So
``jane\u200b@gmail.com`` is redacted at ingest, and the clean stage's
text hygiene, which removes those characters later, cannot bring an address back to light.
"""

from __future__ import annotations

import functools
import ipaddress
import re
import sys
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable

from stdnum import iban, luhn

from assets.shared.errors import InputError

PII_TYPES = ("email", "phone", "card", "iban", "ip")
PLACEHOLDERS = {kind: f"<{kind.upper()}>" for kind in PII_TYPES}

_EMAIL = re.compile(
    r"(?<![\w.%+-])[\w%+-]+(?:\.[\w%+-]+)*@((?:[^\W_](?:[\w-]{0,61}[^\W_])?\.)+[^\W\d_]{2,63})(?![\w-])"
)
_DOCUMENTATION_DOMAINS = ("example.com", "example.net", "example.org")
_DOCUMENTATION_TLDS = ("example", "test", "invalid", "localhost")

# either case: stdnum checks the number in capitals, and "gb82west..." is the same account
_IBAN = re.compile(
    r"(?<![\w-])[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?(?![\w-])", re.IGNORECASE
)

# Not after "DE89 ": the digits of an IBAN that failed its check are no card either.
# Groups may be split by a space, hyphen, dot or slash, mixed ("4111 1111-1111 1111"): the layout and the
# Luhn check, not the separator, tell a card number.
_CARD = re.compile(r"(?<![\w+.,/-])(?<![A-Za-z]{2}\d{2} )\d(?:[ ./-]?\d){12,18}(?![\w/-]|[.,]\d)")
_CARD_LAYOUT = re.compile(
    r"\d{13,19}|\d{4}[ ./-]\d{4}(?:[ ./-]\d{4}){1,2}(?:[ ./-]\d{1,4})?|\d{4}[ ./-]\d{6}[ ./-]\d{4,5}"
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

Span = tuple[int, int]


def check_types(types: Iterable[str], setting: str = "data.pii_types") -> tuple[str, ...]:
    """``types`` as a tuple, or :class:`InputError` naming ``setting`` when one is not a PII type."""
    chosen = tuple(types)
    unknown = [kind for kind in chosen if kind not in PII_TYPES]
    if unknown:
        raise InputError(
            f"{setting} may list {', '.join(PII_TYPES)}, got {list(chosen)!r}; fix it in params.yaml"
        )
    return chosen


def redact(text: str, types: Iterable[str] = PII_TYPES) -> tuple[str, Counter[str]]:
    """``text`` with every PII span of ``types`` replaced by its placeholder, and the count by type.

    Idempotent: a placeholder matches no pattern. Characters hidden from a reader (see the module
    docstring) are looked through, and removed with the span they sit in.
    """
    counts: Counter[str] = Counter()
    wanted = set(types)
    visible, where = _visible(text)
    # Every type but e-mail and IPv6 needs a digit: one scan spares six on most texts.
    digits = _DIGIT.search(visible) is not None
    for kind, find, needs_digit in _FINDERS:
        if kind not in wanted or (needs_digit and not digits):
            continue
        spans = find(visible)
        if spans:
            text = _substitute(text, kind, spans, where, counts)
            visible, where = _visible(text)
    return text, counts


def _substitute(
    text: str, kind: str, spans: list[Span], where: list[int] | None, counts: Counter[str]
) -> str:
    """``text`` with ``spans`` of its visible text (mapped back through ``where``) replaced."""
    pieces = []
    last = 0
    for start, end in spans:
        if where is not None:
            start, end = where[start], where[end - 1] + 1
        pieces += [text[last:start], PLACEHOLDERS[kind]]
        last = end
    counts[kind] += len(spans)
    return "".join(pieces) + text[last:]


_ASCII_HIDDEN = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


@functools.cache
def _hidden() -> re.Pattern[str]:
    """Format characters (Cf) and controls other than tab, LF and CR, as a class of code-point ranges:
    built once, on first use (a scan of every code point takes a fraction of a second)."""
    ranges: list[list[int]] = []
    for code in range(sys.maxunicode + 1):
        category = unicodedata.category(chr(code))
        if category == "Cf" or (category == "Cc" and chr(code) not in "\t\n\r"):
            if ranges and ranges[-1][1] == code - 1:
                ranges[-1][1] = code
            else:
                ranges.append([code, code])
    parts = (re.escape(chr(low)) + (f"-{re.escape(chr(high))}" if high > low else "") for low, high in ranges)
    return re.compile("[" + "".join(parts) + "]")


def _visible(text: str) -> tuple[str, list[int] | None]:
    """``text`` as the patterns see it: without hidden characters and each character in its NFKC form
    (full-width ``ｊｏｈｎ＠ｇｍａｉｌ．ｃｏｍ`` reads as ``john@gmail.com``), and where each of its
    characters comes from in ``text`` (None when the view is ``text`` itself, the common case). NFKC is
    applied character by character, so every character of the view maps back to exactly one of
    ``text``."""
    if text.isascii():
        if not _ASCII_HIDDEN.search(text):
            return text, None
        where = [index for index, char in enumerate(text) if not _ASCII_HIDDEN.match(char)]
        return "".join(text[index] for index in where), where
    hidden = _hidden()
    if not hidden.search(text) and unicodedata.is_normalized("NFKC", text):
        return text, None
    pieces: list[str] = []
    where = []
    for index, char in enumerate(text):
        if hidden.match(char):
            continue
        form = char if char.isascii() else unicodedata.normalize("NFKC", char)
        pieces.append(form)
        where += [index] * len(form)
    return "".join(pieces), where


def _matching(pattern: re.Pattern[str], keep: Callable[[re.Match[str]], bool]) -> _Finder:
    def find(text: str) -> list[Span]:
        return [match.span() for match in pattern.finditer(text) if not keep(match)]

    return find


def _keep_email(match: re.Match[str]) -> bool:
    domain = match.group(1).lower()
    return domain.endswith(tuple(f".{tld}" for tld in _DOCUMENTATION_TLDS)) or any(
        domain == reserved or domain.endswith(f".{reserved}") for reserved in _DOCUMENTATION_DOMAINS
    )


def _find_iban(text: str) -> list[Span]:
    spans = []
    for match in _IBAN.finditer(text):
        # A word of capitals after the number can look like its last group: try shorter spans too.
        candidate = match.group()
        while candidate:
            if iban.is_valid(candidate):
                spans.append((match.start(), match.start() + len(candidate)))
                break
            candidate = candidate.rpartition(" ")[0]
    return spans


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


def _find_phone_after_word(text: str) -> list[Span]:
    spans = []
    for match in _PHONE_AFTER_WORD.finditer(text):
        number = match.group(1)
        digits = sum(char.isdigit() for char in number)
        if 7 <= digits <= 15 and not _DATE.search(number):
            spans.append(match.span(1))
    return spans


# A finder returns the spans of one kind in a text, left to right, not overlapping.
_Finder = Callable[[str], list[Span]]


def _gated(gate: re.Pattern[str], find: _Finder) -> _Finder:
    """``find``, run only on a text where ``gate`` (a cheap pattern every match of ``find`` contains)
    occurs: most texts hold no PII, and the full patterns cost far more than the gates."""

    def gated(text: str) -> list[Span]:
        return find(text) if gate.search(text) else []

    return gated


_DIGIT = re.compile(r"\d")
_NORTH_AMERICA_GATE = re.compile(r"\d\d\d(?:\) ?|[-. ])[2-9]\d\d[-. ]")

# (type, finder, whether every match holds a digit), in the order they run.
_FINDERS: tuple[tuple[str, _Finder, bool], ...] = (
    ("email", _gated(re.compile("@"), _matching(_EMAIL, _keep_email)), False),
    ("iban", _gated(re.compile(r"[A-Z]{2}\d\d", re.IGNORECASE), _find_iban), True),
    # every card layout opens with four digits
    ("card", _gated(re.compile(r"\d{4}[ ./-]?\d"), _matching(_CARD, _keep_card)), True),
    ("ip", _gated(re.compile(r"\d\.\d"), _matching(_IPV4, _keep_ip)), True),
    ("ip", _gated(re.compile(":"), _matching(_IPV6, _keep_ip)), False),
    ("phone", _gated(re.compile(r"\+"), _matching(_PHONE_INTERNATIONAL, _keep_international_phone)), True),
    # both North American layouts hold an area code or exchange, a separator and a 2-9 exchange
    ("phone", _gated(_NORTH_AMERICA_GATE, _matching(_PHONE_NORTH_AMERICA, lambda match: False)), True),
    ("phone", _gated(re.compile(r"\d[\d ./()-]{5,22}\d"), _find_phone_after_word), True),
)
