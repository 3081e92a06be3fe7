"""Text embeddings for the data-quality pass.

The ``embedded`` embedder is fitted on the data itself and needs nothing downloaded: TF-IDF over
character 3-5-grams inside word boundaries (robust to typos and inflection) with sublinear term
frequency, reduced by a seeded truncated SVD (latent semantic analysis) and L2-normalized so that cosine
distance is what neighbours are compared by. Other embedders (e.g. a sentence-transformers model) plug in
through :func:`make_embedder` and must return the same kind of array: one unit-length row per text.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

Embedder = Callable[[list[str]], "np.ndarray"]

SUPPORTED_EMBEDDERS = ("embedded",)

_log = logging.getLogger(__name__)


def embed_texts(texts: list[str], *, dim: int, seed: int) -> np.ndarray:
    """Embed ``texts`` into at most ``dim`` dimensions, deterministically for a given ``seed``.

    SVD cannot produce more components than the data has rows or distinct n-grams, so tiny inputs get
    fewer columns than ``dim``; the cosine geometry is unaffected.
    """
    import numpy as np
    from sklearn.decomposition import TruncatedSVD
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.preprocessing import normalize

    if dim < 1:
        raise ValueError(f"embedding dimension must be >= 1, got {dim} (clean.embedding_dim)")
    if not texts:
        return np.zeros((0, dim), dtype=np.float64)
    vectorizer = TfidfVectorizer(analyzer="char_wb", ngram_range=(3, 5), sublinear_tf=True, lowercase=True)
    try:
        tfidf = vectorizer.fit_transform(texts)
    except ValueError:
        # Every text was empty or whitespace: there is nothing to tell the rows apart.
        return np.zeros((len(texts), 1), dtype=np.float64)
    components = min(dim, tfidf.shape[0] - 1, tfidf.shape[1] - 1)
    if components < 1:
        return normalize(tfidf.toarray())
    svd = TruncatedSVD(n_components=components, random_state=seed)
    return normalize(svd.fit_transform(tfidf))


def make_embedder(name: str, *, dim: int, seed: int) -> Embedder:
    """The embedder named by the ``clean.embedder`` setting."""
    if name == "embedded":
        return lambda texts: _timed(embed_texts, texts, dim=dim, seed=seed)
    raise ValueError(
        f"clean.embedder is {name!r}, which is not supported; use one of {', '.join(SUPPORTED_EMBEDDERS)} "
        "in params.yaml"
    )


def _timed(embed: Callable[..., np.ndarray], texts: list[str], **options: object) -> np.ndarray:
    """``embed(texts, **options)``, its duration logged (``extra``: phase, seconds, cpu_seconds)."""
    start, cpu = time.perf_counter(), time.process_time()
    vectors = embed(texts, **options)
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu
    timing = {"phase": "embed", "seconds": seconds, "cpu_seconds": cpu_seconds}
    _log.info("embedded %d texts in %.2f s", len(texts), timing["seconds"], extra=timing)
    return vectors
