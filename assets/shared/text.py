"""Text identity: the one normalization every comparison of texts uses (dedup, leakage, paraphrase
similarity, exact match), and the one rendering of a conversation as a string. Framework-free."""

from __future__ import annotations

import unicodedata


def normalize_text(text: str) -> str:
    """NFKC, case-fold and collapse whitespace: the one text normalization of the project (dedup,
    leakage, paraphrase similarity, exact match), so trivially different copies compare equal."""
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


def conversation_text(messages: list[dict[str, str]]) -> str:
    """One string per conversation, used for hashing, dedup and embeddings."""
    return "\n".join(f"{m['role']}: {m['content']}" for m in messages)
