"""Label issues on the rows' ``category``: confident learning with cleanlab's Datalab.

Confident learning (Northcutt, Jiang & Chuang, 2021, "Confident Learning: Estimating Uncertainty in Dataset
Labels", JAIR 70) needs, for every row, predicted class probabilities from a model that did not see that
row. Ours come from a cheap classifier on the rows' embeddings: scikit-learn's ``LogisticRegression`` in a
seeded, stratified K-fold ``cross_val_predict``, so each row is scored by the model of the fold that held it
out (``C`` = :data:`INVERSE_REGULARIZATION`). Datalab (``label_name="category"``, ``pred_probs``) then
flags the rows whose given category disagrees with what the other rows of the data suggest, with a label
quality score (low = likely wrong) and the category it suggests.

Only rows that carry a category are checked; a category with fewer rows than folds cannot be held out in
every fold, so its rows are left out (and named in the note). The check needs at least two categories
left; otherwise it is skipped, and the note says why.
"""

from __future__ import annotations

import contextlib
import io
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

# Folds of the out-of-fold probabilities: cleanlab's own cross-validation default (cv_n_folds=5).
FOLDS = 5
# Inverse L2 strength of the classifier. The embeddings are unit length, so each coordinate is about
# 1/sqrt(dim) and scikit-learn's default C=1 over-regularizes: on two clearly separate topics its
# probabilities stay near 0.8, and confident learning then misses planted errors (in
# tests/test_cleanlab_checks.py it finds all four at C=10, two at C=1).
INVERSE_REGULARIZATION = 10.0
# Categories named in a note before "and N more".
_NAMED = 10


@dataclass(frozen=True)
class LabelIssue:
    """A row whose ``given`` category Datalab doubts: the ``suggested`` one and the label ``score`` (0-1)."""

    given: str
    suggested: str
    score: float


@dataclass(frozen=True)
class LabelCheck:
    """What the label check did. ``issues`` and ``scores`` are keyed by row index (the caller's order);
    ``scores`` holds the label quality score of every checked row; ``health`` is Datalab's overall label
    health score (share of rows whose label is estimated right), ``None`` when skipped; ``note`` says what
    was checked, or why not."""

    checked: int
    note: str
    issues: dict[int, LabelIssue] = field(default_factory=dict)
    scores: dict[int, float] = field(default_factory=dict)
    health: float | None = None


def out_of_fold_probabilities(
    vectors: np.ndarray, labels: Sequence[str], *, folds: int = FOLDS, seed: int = 0
) -> np.ndarray:
    """Predicted class probabilities, shape (rows, classes), each row's from a model fitted without it.

    Classes are in sorted order (``np.unique``), as Datalab numbers them. ``vectors``: (rows, dim). Every
    class needs at least ``folds`` rows (scikit-learn's ``StratifiedKFold`` raises ``ValueError`` otherwise).
    """
    import numpy as np
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    # lbfgs is deterministic; the folds are the seeded part.
    model = LogisticRegression(C=INVERSE_REGULARIZATION, max_iter=1000)
    splits = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    return cross_val_predict(model, vectors, np.asarray(labels), cv=splits, method="predict_proba")


def find_label_issues(
    vectors: np.ndarray, categories: Sequence[str | None], *, folds: int = FOLDS, seed: int = 0
) -> LabelCheck:
    """Check the ``categories`` of the rows of ``vectors`` (rows, dim): see the module docstring.

    ``None`` or empty categories are not checked. Raises ``ValueError`` when the lengths differ or
    ``folds`` < 2.
    """
    if len(categories) != vectors.shape[0]:
        raise ValueError(f"got {vectors.shape[0]} rows but {len(categories)} categories")
    if folds < 2:
        raise ValueError(f"the label check needs at least 2 folds, got {folds} (clean.cleanlab_label_folds)")
    given = {index: category for index, category in enumerate(categories) if category}
    if not given:
        return LabelCheck(0, "cleanlab label check skipped: no row has a category")
    sizes = Counter(given.values())
    small = sorted(name for name, size in sizes.items() if size < folds)
    kept = [index for index, category in given.items() if sizes[category] >= folds]
    left_out = ""
    if small:
        named = ", ".join(repr(name) for name in small[:_NAMED])
        more = f" and {len(small) - _NAMED} more" if len(small) > _NAMED else ""
        left_out = (
            f"; {sum(sizes[name] for name in small)} rows of {len(small)} categories with fewer than "
            f"{folds} rows (clean.cleanlab_label_folds) not checked: {named}{more}"
        )
    classes = len(sizes) - len(small)
    if classes < 2:
        why = (
            f"cleanlab label check skipped: {len(given)} rows carry a category, but "
            f"{'no category has' if classes == 0 else 'only one category has'} at least {folds} rows "
            f"(clean.cleanlab_label_folds), and checking labels needs two"
        )
        return LabelCheck(0, why + left_out)
    return _datalab_label_check(vectors[kept], kept, [given[index] for index in kept], folds, seed, left_out)


def _datalab_label_check(
    vectors: np.ndarray, kept: list[int], labels: list[str], folds: int, seed: int, left_out: str
) -> LabelCheck:
    from cleanlab import Datalab

    probabilities = out_of_fold_probabilities(vectors, labels, folds=folds, seed=seed)
    lab = Datalab(data={"category": labels}, label_name="category", verbosity=0)
    printed = io.StringIO()
    # Datalab catches an issue type's error and prints it; keep it for the note instead of the console.
    with contextlib.redirect_stdout(printed):
        # One process: cleanlab's default forks a multiprocessing pool, and a fork of the threaded Dagster
        # run process can deadlock on a lock another thread held (seen in the end-to-end tests).
        single = {"clean_learning_kwargs": {"find_label_issues_kwargs": {"n_jobs": 1}}}
        lab.find_issues(pred_probs=probabilities, issue_types={"label": single})
    if "label" not in set(lab.issue_summary["issue_type"]):
        error = next((line for line in printed.getvalue().splitlines() if "label" in line), "no message")
        why = f"Datalab could not run its label check on these {len(kept)} rows ({error[:300]})"
        return LabelCheck(0, f"cleanlab label check skipped: {why}{left_out}")
    found = lab.get_issues("label")
    health = float(lab.get_issue_summary("label")["score"].iloc[0])
    scores = {index: float(score) for index, score in zip(kept, found["label_score"], strict=True)}
    issues = {
        kept[position]: LabelIssue(str(row.given_label), str(row.predicted_label), float(row.label_score))
        for position, row in enumerate(found.itertuples())
        if row.is_label_issue
    }
    note = (
        f"cleanlab label check: {len(issues)} of {len(kept)} rows' categories look wrong ({len(set(labels))} "
        f"categories, out-of-fold logistic regression over {folds} folds; label health {health:.3f})"
    )
    return LabelCheck(len(kept), note + left_out, issues, scores, health)
