"""A persistent cache of translations, so that a re-run translates only texts it has not seen.

An entry is keyed by the translator (its identity, backend and decoding options: everything its output
depends on, see ``translator_key``) and the sha256 of the exact input text, and holds the output text.
It lives in one SQLite file (``.cache/backtranslation/translations.sqlite3`` in the project, ignored by git
and DVC): transactions keep it consistent when a run is killed or two runs write at once. The cache only
ever returns what the same translator produced for the same text, so a stage's output is the same
whether the cache was cold or warm. Delete the directory to reclaim the space; nothing else reads it.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType
from typing import Protocol

CACHE_DIR = Path(".cache") / "backtranslation"
CACHE_FILE = "translations.sqlite3"
# SQLite limits the number of parameters of one statement (999 in older builds).
_LOOKUP_CHUNK = 500


class TranslationStore(Protocol):
    """What back-translation needs of a cache (``TranslationCache`` has it; tests may pass a dict-backed
    one)."""

    def get(self, translator: str, hashes: Iterable[str]) -> dict[str, str]:
        """Cached outputs by text hash, for those of ``hashes`` that are cached for ``translator``."""
        ...

    def put(self, translator: str, outputs: dict[str, str]) -> None:
        """Store outputs by text hash for ``translator``."""
        ...


def text_hash(text: str) -> str:
    """The cache key of a text: the sha256 of its exact UTF-8 bytes (no normalization: the translator
    sees the exact text, so two texts that differ in case or spacing are two entries)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def translator_key(identity: str, *, backend: str, max_new_tokens: int, num_beams: int) -> str:
    """Everything a translator's output depends on, as one string. The batch size is left out: batches
    are sorted by length and padded, and generation does not depend on what else is in a batch (the
    benchmark checks batched against one-at-a-time outputs)."""
    return json.dumps(
        {
            "translator": identity,
            "backend": backend,
            "max_new_tokens": max_new_tokens,
            "num_beams": num_beams,
        },
        sort_keys=True,
    )


class TranslationCache:
    """The SQLite translation cache at ``path`` (created with its directory when missing)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # A long timeout: a concurrent run holds the write lock only while it stores one chunk.
        self._db = sqlite3.connect(self.path, timeout=120)
        with self._db:
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS translators (id INTEGER PRIMARY KEY, key TEXT NOT NULL UNIQUE)"
            )
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS translations (translator INTEGER NOT NULL, text_sha256 TEXT NOT "
                "NULL, output TEXT NOT NULL, PRIMARY KEY (translator, text_sha256)) WITHOUT ROWID"
            )

    def __enter__(self) -> TranslationCache:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        self._db.close()

    def _translator_id(self, key: str, *, create: bool) -> int | None:
        row = self._db.execute("SELECT id FROM translators WHERE key = ?", (key,)).fetchone()
        if row is not None or not create:
            return None if row is None else int(row[0])
        with self._db:
            self._db.execute("INSERT OR IGNORE INTO translators (key) VALUES (?)", (key,))
        return self._translator_id(key, create=False)

    def get(self, translator: str, hashes: Iterable[str]) -> dict[str, str]:
        translator_id = self._translator_id(translator, create=False)
        wanted = list(dict.fromkeys(hashes))
        if translator_id is None or not wanted:
            return {}
        found: dict[str, str] = {}
        for start in range(0, len(wanted), _LOOKUP_CHUNK):
            chunk = wanted[start : start + _LOOKUP_CHUNK]
            marks = ", ".join("?" * len(chunk))
            query = "SELECT text_sha256, output FROM translations WHERE translator = ? AND text_sha256 IN"
            rows = self._db.execute(f"{query} ({marks})", (translator_id, *chunk))
            found.update(rows)
        return found

    def put(self, translator: str, outputs: dict[str, str]) -> None:
        if not outputs:
            return
        translator_id = self._translator_id(translator, create=True)
        with self._db:
            self._db.executemany(
                "INSERT OR REPLACE INTO translations (translator, text_sha256, output) VALUES (?, ?, ?)",
                [(translator_id, digest, output) for digest, output in outputs.items()],
            )

    def size(self) -> int:
        """How many translations are cached, for all translators."""
        return int(self._db.execute("SELECT COUNT(*) FROM translations").fetchone()[0])
