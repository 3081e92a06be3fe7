"""Text hygiene: what the stored text of a message may contain. Framework-free.

Text copied from web pages and editors carries characters nobody sees in review (flores#31, tatoeba2#643):
they make copies look different to a hash, hide text from a reviewer and are trained on like any other
token. :func:`clean_text` applies these rules to one message, in order, and counts what it changed:

1. **Invisible format characters are removed**, counted by kind: zero-width space (U+200B), zero-width
   non-joiner and joiner (U+200C, U+200D), soft hyphen (U+00AD), word joiner (U+2060), byte-order mark
   (U+FEFF, anywhere in the text), bidirectional embeddings, overrides and isolates (U+202A-U+202E,
   U+2066-U+2069) and Unicode tag characters (U+E0000-U+E007F, invisible text). Kept where they shape
   visible text: one joiner or non-joiner between two letters of a script that uses them (Arabic, Persian,
   the Indic scripts: code points U+0600-U+1FFF), a joiner between two emoji (a family, a rainbow flag),
   tag characters inside an emoji tag sequence (the flag of Scotland).
2. **Lone control characters are removed**: C0 and C1 controls other than tab, newline and carriage
   return (a stray form feed, escape or DEL). A message with NUL (U+0000), U+FFFD or two control
   characters in a row is binary or mis-decoded data, not a stray keystroke: its controls are left in
   place, and validation rejects the row (``control_characters``, ``replacement_character``).
3. **NFC**: stored text is composed (``e`` + combining acute becomes ``é``); NFKC stays the identity
   normalization of :func:`assets.shared.text.normalize_text` and never rewrites stored text, so a
   full-width letter or a no-break space is kept as written.
4. **Whitespace**: CRLF, CR and the Unicode line separators become ``\\n``; spaces and tabs at the end of
   a line are removed; runs of blank lines become one blank line; the message is stripped at both ends
   (as ingest does). Indentation and spaces inside a line are kept (code, tables).

:func:`invisible_only_turns` is the filter that goes with it: a turn with text but no visible character
(``\\u200b\\u200b\\u200b``) is rejected as ``empty_content`` before it is rewritten to nothing.

Both run before validation, so they skip a row whose messages are malformed (validation rejects it).
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Sequence

from assets.clean.steps import Rejection, Rewritten, Row

# The invisible characters removed from stored text, by the kind they are counted as.
INVISIBLE_KINDS: dict[str, str] = {
    "\u200b": "zero_width_space",
    "\u200c": "zero_width_non_joiner",
    "\u200d": "zero_width_joiner",
    "\u00ad": "soft_hyphen",
    "\u2060": "word_joiner",
    "\ufeff": "byte_order_mark",
    **dict.fromkeys(map(chr, range(0x202A, 0x202F)), "bidi_control"),
    **dict.fromkeys(map(chr, range(0x2066, 0x206A)), "bidi_control"),
    **dict.fromkeys(map(chr, range(0xE0000, 0xE0080)), "tag_character"),
}
_INVISIBLE = re.compile("[" + "".join(re.escape(char) for char in INVISIBLE_KINDS) + "]")
_JOINERS = "\u200c\u200d"
# A run of the same joiner becomes a single one before the context rule: a run is a typo.
_JOINER_RUN = re.compile("([\u200c\u200d])\\1+")
# Letters of these code points belong to scripts whose spelling uses (non-)joiners: Arabic, Syriac,
# Thaana, the Indic scripts, Sinhala, Myanmar, Khmer, Mongolian.
_JOINING_SCRIPTS = range(0x0600, 0x2000)
_SKIN_TONES = range(0x1F3FB, 0x1F400)
_EMOJI_PRESENTATION = "\ufe0f"
_BLACK_FLAG = "\U0001f3f4"
_TAG_RANGE = range(0xE0000, 0xE0080)

# C0 and C1 control characters but tab, newline, carriage return and NEL (U+0085, a line break, turned
# into a newline below like the other line breaks).
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x84\x86-\x9f]")
# NUL, the decoder's replacement character, or two controls in a row: binary or mis-decoded data.
_GARBAGE = re.compile(f"[\x00\ufffd]|{_CONTROL.pattern}{{2}}")
_LINE_BREAKS = re.compile("\r\n|[\r\x85\u2028\u2029]")
_TRAILING_SPACE = re.compile("[ \t]+$", re.MULTILINE)
_BLANK_LINE_RUN = re.compile("\n{3,}")


def clean_text(text: str) -> tuple[str, Counter[str]]:
    """The text with the hygiene rules of this module applied, and what changed, by kind (characters for
    invisible and control characters, messages for ``nfc``, lines for ``trailing_whitespace``, runs for
    ``blank_lines``, line breaks for ``line_endings``)."""
    counts: Counter[str] = Counter()
    text = _remove_invisible(text, counts)
    text = _remove_lone_controls(text, counts)
    composed = unicodedata.normalize("NFC", text)
    if composed != text:
        counts["nfc"] += 1
    text = _normalize_whitespace(composed, counts)
    return text, +counts  # only the kinds that changed something


def has_garbage(text: str) -> bool:
    """Whether ``text`` looks binary or mis-decoded: NUL, U+FFFD or two control characters in a row."""
    return _GARBAGE.search(text) is not None


def _remove_invisible(text: str, counts: Counter[str]) -> str:
    if text.isascii():  # the fast path: no invisible character is ASCII
        return text

    def collapse(match: re.Match[str]) -> str:
        counts[INVISIBLE_KINDS[match.group(1)]] += len(match.group()) - 1
        return match.group(1)

    def drop(match: re.Match[str]) -> str:
        if _shapes_text(match.string, match.start()):
            return match.group()
        counts[INVISIBLE_KINDS[match.group()]] += 1
        return ""

    return _INVISIBLE.sub(drop, _JOINER_RUN.sub(collapse, text))


def _shapes_text(text: str, index: int) -> bool:
    """Whether the invisible character at ``index`` changes how the visible text around it looks."""
    char = text[index]
    before = text[index - 1] if index > 0 else ""
    after = text[index + 1] if index + 1 < len(text) else ""
    if char in _JOINERS:
        if _joining_letter(before) and _joining_letter(after):
            return True
        return char == "\u200d" and _emoji_end(before) and _is_emoji(after)
    if ord(char) in _TAG_RANGE:
        # An emoji tag sequence: the black flag, tag characters, then CANCEL TAG (U+E007F).
        start = index
        while start > 0 and ord(text[start - 1]) in _TAG_RANGE:
            start -= 1
        end = index
        while end + 1 < len(text) and ord(text[end + 1]) in _TAG_RANGE:
            end += 1
        return start > 0 and text[start - 1] == _BLACK_FLAG and text[end] == "\U000e007f"
    return False


def _joining_letter(char: str) -> bool:
    return bool(char) and ord(char) in _JOINING_SCRIPTS and unicodedata.category(char)[0] in "LM"


def _is_emoji(char: str) -> bool:
    return bool(char) and unicodedata.category(char) == "So"


def _emoji_end(char: str) -> bool:
    return _is_emoji(char) or char == _EMOJI_PRESENTATION or (bool(char) and ord(char) in _SKIN_TONES)


def _remove_lone_controls(text: str, counts: Counter[str]) -> str:
    if has_garbage(text):
        return text  # validation rejects the row; its text stays as it came, for the audit
    text, removed = _CONTROL.subn("", text)
    counts["control_character"] += removed
    return text


def _normalize_whitespace(text: str, counts: Counter[str]) -> str:
    text, breaks = _LINE_BREAKS.subn("\n", text)
    counts["line_endings"] += breaks
    text, trailing = _TRAILING_SPACE.subn("", text)
    counts["trailing_whitespace"] += trailing
    text, runs = _BLANK_LINE_RUN.subn("\n\n", text)
    counts["blank_lines"] += runs
    stripped = text.strip()
    if stripped != text:
        counts["edge_whitespace"] += 1
    return stripped


def hygiene_rewrite(rows: Sequence[Row]) -> Rewritten:
    """The rewrite step: :func:`clean_text` on every message of every well-formed row; the counters are
    summed over all messages, by kind."""
    contents: dict[int, list[str]] = {}
    counts: Counter[str] = Counter()
    for position, row in enumerate(rows):
        texts = _contents(row)
        if texts is None:
            continue
        new = []
        for text in texts:
            cleaned, changes = clean_text(text)
            new.append(cleaned)
            counts.update(changes)
        if new != texts:
            contents[position] = new
    return Rewritten(contents, dict(sorted(counts.items())))


def invisible_only_turns(row: Row) -> Rejection | None:
    """Reject a row with a turn that has text but no visible character: it would be trained on as an
    empty turn. A turn that is blank already is left to validation (same reason, ``empty_content``), and so
    is an assistant turn that calls tools (the call is its content)."""
    texts = _contents(row)
    if texts is None:
        return None
    for turn, (message, text) in enumerate(zip(row["messages"], texts, strict=True), start=1):
        calls_tools = message.get("role") == "assistant" and message.get("tool_calls") is not None
        if text.strip() and not clean_text(text)[0] and not calls_tools:
            return Rejection(
                "empty_content",
                f"turn {turn} ({message['role']}) has no visible character: it holds only {_describe(text)}",
            )
    return None


def _describe(text: str) -> str:
    """``3 × U+200B ZERO WIDTH SPACE, 1 × U+0020 SPACE``, in order of first appearance."""
    seen = Counter(text)
    return ", ".join(
        f"{count} × U+{ord(char):04X} {unicodedata.name(char, 'UNNAMED')}" for char, count in seen.items()
    )


def _contents(row: Row) -> list[str] | None:
    """The message texts of a well-formed row, or ``None`` (validation will reject the row)."""
    messages = row.get("messages")
    if not isinstance(messages, list) or not messages:
        return None
    if not all(isinstance(m, dict) and isinstance(m.get("content"), str) for m in messages):
        return None
    return [message["content"] for message in messages]
