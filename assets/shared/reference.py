"""The reference rule: what a candidate adapter is compared with, and which champion can be exported.

A candidate faces the current champion when the champion was trained on the same base model (same DVC
md5 of the base_model asset); otherwise, or before the first champion, it faces the base model itself.
A candidate whose adapter bytes are the champion's is the champion (an unchanged re-run). Evaluation
scores against this reference, the promotion gate judges against it, and export merges the champion only
when it is the reference for the current base. A champion whose registry files are gone cannot be
scored: the candidate then faces the base model, and the reference says why (evaluation records the
version in its report, so the gate agrees). Framework-free: a champion is the registry's dict
(``version``, ``tags`` with ``adapter_md5``, ``base_model_md5``, ``base_model``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

# What to run when the champion's registry files are gone (pipelines/registry.py).
REPAIR_COMMAND = "python -m pipelines.registry repair"
ReferenceKind = Literal["champion", "candidate_is_champion", "base"]


@dataclass(frozen=True)
class Reference:
    """``kind``: what the candidate is compared with; ``champion_version``: the champion's registry
    version when there is one (whatever the kind); ``note``: the decision in words, for the UI."""

    kind: ReferenceKind
    champion_version: str | None
    note: str


def choose_reference(
    champion: dict[str, Any] | None,
    *,
    base_model_md5: str,
    adapter_md5: str | None = None,
    artifacts_missing: str | None = None,
) -> Reference:
    """The reference for a candidate with ``adapter_md5`` trained on the base with ``base_model_md5``.

    Pass ``adapter_md5=None`` to ask only whether the champion belongs to this base (export).
    ``artifacts_missing``: the version whose registry files were found gone; when it is the champion
    that would be the reference, the base model is the reference instead.
    """
    if champion is None:
        return Reference("base", None, "no champion yet: compared with the base model")
    version = str(champion["version"])
    tags = champion.get("tags", {})
    if adapter_md5 is not None and tags.get("adapter_md5") == adapter_md5:
        return Reference(
            "candidate_is_champion", version, f"the candidate is the champion (version {version})"
        )
    if tags.get("base_model_md5") == base_model_md5:
        if artifacts_missing is not None and str(artifacts_missing) == version:
            return Reference(
                "base",
                version,
                f"base (champion v{version} artifacts missing): compared with the base model; "
                f"`{REPAIR_COMMAND}` moves the champion alias to an earlier champion with its files",
            )
        return Reference("champion", version, f"compared with the champion, version {version}")
    return Reference(
        "base",
        version,
        f"champion version {version} was trained on another base model ({tags.get('base_model', '?')}): "
        "compared with the base model instead",
    )
