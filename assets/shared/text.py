"""Text identity: the one normalization every comparison of texts uses (dedup, leakage, paraphrase
similarity, exact match), and the one rendering of a conversation as a string. Framework-free."""

from __future__ import annotations

import unicodedata


def normalize_text(text: str) -> str:
    """Drop invisible characters, then NFKC, case-fold and collapse whitespace: the one text normalization
    of the project (dedup, leakage, paraphrase similarity, exact match), so trivially different copies
    compare equal. Invisible means Unicode format characters (category Cf: zero-width space, joiners,
    soft hyphen, word joiner, BOM, bidirectional controls, tag characters), so two copies that differ by
    one are the same text whether or not the clean stage's hygiene step removed it first."""
    return " ".join(unicodedata.normalize("NFKC", strip_invisible(text)).casefold().split())


def strip_invisible(text: str) -> str:
    """``text`` without Unicode format characters (category Cf), which change nothing a reader sees."""
    if text.isascii():  # no format character is ASCII: the common case costs one scan
        return text
    return "".join(char for char in text if unicodedata.category(char) != "Cf")


def conversation_text(messages: list[dict[str, str]]) -> str:
    """One string per conversation, used for hashing, dedup and embeddings. A turn's tool calls are
    part of it (two rows that differ only in a call's arguments are different examples)."""
    return "\n".join(
        f"{m['role']}: {m['content'] or ''}" + (f" {m['tool_calls']}" if m.get("tool_calls") else "")
        for m in messages
    )


def markdown_cell(text: object) -> str:
    """``text`` safe inside a markdown table cell: pipes escaped, and ``<`` written as ``&lt;`` so a
    placeholder such as ``<EMAIL>`` is shown, not taken for an HTML tag and dropped."""
    return str(text).replace("|", "\\|").replace("<", "&lt;")
