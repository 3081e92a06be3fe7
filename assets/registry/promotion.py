"""What the promotion gate does with a verdict: promote, hold for approval, or reject, and tag it so.

Framework-free: the registry is passed in (resources/registry.py's ModelRegistry or any object with the
same methods), so the promotion_gate check, the approve command and tests share one path.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any

from assets.registry.gate import GateDecision, GateSettings, judge
from assets.shared.reference import choose_reference

if TYPE_CHECKING:
    from resources.registry import ModelRegistry

# The `promotion` tag of a version: what the gate (or a person) last decided about it.
STATES = ("champion", "pending", "rejected", "demoted", "rolled_back")


@dataclass(frozen=True)
class GateOutcome:
    """``state``: the version's promotion tag after the gate ("champion", "pending", "rejected");
    ``champion``: the champion version afterwards (None: none)."""

    decision: GateDecision
    state: str
    champion: str | None


def evaluate_gate(
    record: dict[str, Any], report: dict[str, Any], champion: dict[str, Any] | None
) -> tuple[GateDecision, str | None]:
    """The verdict on the version in ``record`` (the registered_adapter record: ``name``, ``version``,
    ``tags``, ``gate`` settings, ``adapter_weight_delta``) from ``report``, given the current
    ``champion``; also the champion version it was judged against. Reads, never writes."""
    names = {f.name for f in fields(GateSettings)}
    try:
        settings = GateSettings(**{k: v for k, v in record["gate"].items() if k in names})
    except TypeError as exc:
        raise ValueError(
            f"the registered_adapter record lacks gate settings ({exc}): re-materialize registered_adapter"
        ) from None
    reference = choose_reference(
        champion,
        base_model_md5=report.get("base_model_md5", ""),
        adapter_md5=record["tags"].get("adapter_md5"),
        artifacts_missing=report.get("champion_artifacts_missing"),
    )
    against = reference.champion_version
    evaluated_against = (report.get("champion") or {}).get("version")
    kind = reference.kind
    if report.get("adapter_md5") != record["tags"].get("adapter_md5"):
        why = "the evaluation report is for another adapter: re-materialize evaluation_report"
        return GateDecision(False, "none", why, [why]), against
    if kind == "candidate_is_champion":
        # An unchanged re-run: the same adapter bytes reuse their version, which cannot beat itself.
        why = f"unchanged: version {record['version']} is already the champion (same adapter bytes)"
        return GateDecision(True, kind, why, [why]), against
    if kind != report.get("reference") or (kind == "champion" and evaluated_against != against):
        why = (
            f"the report was made against another reference than the current one ({reference.note}): "
            "re-materialize evaluation_report"
        )
        return GateDecision(False, kind, why, [why]), against
    return judge(report, settings, weight_delta=record.get("adapter_weight_delta")), against


def apply_gate(record: dict[str, Any], report: dict[str, Any], registry: ModelRegistry) -> GateOutcome:
    """Judge the version in ``record`` and act: promote it (compare-and-set against the champion it was
    judged against; RegistryConflict when another run promoted in between), tag it ``pending`` when
    ``require_approval`` is set, or tag it ``rejected``. The verdict and its interval become tags."""
    name, version = record["name"], record["version"]
    decision, against = evaluate_gate(record, report, registry.champion(name))
    if decision.reference == "candidate_is_champion":
        return GateOutcome(decision, "champion", version)
    registry.tag(name, version, "promotion_reason", decision.verdict[:5000])
    if decision.interval is not None:
        registry.tag(name, version, "gate_interval", decision.interval.text())
    registry.tag(name, version, "gate_champion_version", against or "none")
    if not decision.passed:
        registry.tag(name, version, "promotion", "rejected")
        return GateOutcome(decision, "rejected", against)
    if record["gate"].get("require_approval"):
        registry.tag(name, version, "promotion", "pending")
        return GateOutcome(decision, "pending", against)
    registry.promote(name, version, expected_champion=against)
    return GateOutcome(decision, "champion", version)


def approve(registry: ModelRegistry, name: str, version: str) -> str | None:
    """Promote a ``pending`` version, provided the champion is still the one it was judged against.
    Returns the demoted champion's version. Raises ValueError when the version is not pending."""
    info = registry.version(name, version)
    state = info["tags"].get("promotion")
    if state != "pending":
        raise ValueError(
            f"version {version} of '{name}' is not pending approval (promotion={state or 'unset'}): only a "
            "version that passed the gate with registry.require_approval can be approved."
        )
    against = info["tags"].get("gate_champion_version", "none")
    return registry.promote(name, version, expected_champion=None if against == "none" else against)
