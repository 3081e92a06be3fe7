"""The ``data`` settings that say how to read a file: column names, role names and the timestamp policy.

``data.columns`` and ``data.roles`` are lists of ``canonical=yours`` strings (params.yaml settings are
scalars or lists of scalars). ``columns`` renames your fields to the canonical ones, at row level
(:data:`ROW_FIELDS`) or inside each turn (:data:`TURN_FIELDS`); a mapped name replaces the canonical one,
so with ``output=response`` the answer is read from ``response`` only. ``roles`` adds role names of your
own to the built-in aliases (:data:`ROLE_TARGETS` are what they may stand for).

``data.missing_created_at`` decides what happens to a row without a timestamp: ``row_order`` gives it
``data.row_order_start`` plus its line number in seconds (so the time split follows file order) and marks
it ``created_at_source = row_order``; ``reject`` rejects it (``missing_field``).

``data.pii_redaction`` and ``data.pii_types``: which kinds of personal data (:mod:`assets.shared.pii`)
become typed placeholders in every text ingest writes, so no versioned dataset holds them. Framework-free.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from assets.shared.errors import InputError
from assets.shared.pii import PII_TYPES, check_types
from assets.shared.timestamps import parse_cutoff

ROW_FIELDS = (
    "id",
    "created_at",
    "messages",
    "instruction",
    "input",
    "output",
    "system",
    "history",
    "tools",
    "category",
    "lang",
    "source",
    "group_id",
)
TURN_FIELDS = ("role", "content", "tool_calls", "weight")
# What a role name of yours may stand for: ``function_call`` is an assistant turn whose content is a tool
# call (ShareGPT), ``tool`` a turn holding what a tool returned.
ROLE_TARGETS = ("system", "user", "assistant", "tool", "function_call")
MISSING_CREATED_AT = ("row_order", "reject")
DEFAULT_ROW_ORDER_START = "2000-01-01T00:00:00Z"


@dataclass(frozen=True)
class IngestOptions:
    """The ``data`` settings besides ``raw_path`` and ``max_chars``; see the comments in params.yaml."""

    columns: tuple[str, ...] | list[str] = ()
    roles: tuple[str, ...] | list[str] = ()
    missing_created_at: str = "row_order"
    row_order_start: str = DEFAULT_ROW_ORDER_START
    # Off unless params.yaml turns it on (it does), so code that builds options by hand reads rows as
    # they are written.
    pii_redaction: bool = False
    pii_types: tuple[str, ...] | list[str] = PII_TYPES

    def __post_init__(self) -> None:
        object.__setattr__(self, "columns", tuple(self.columns or ()))
        object.__setattr__(self, "roles", tuple(self.roles or ()))
        if not isinstance(self.pii_redaction, bool):
            raise InputError(f"data.pii_redaction must be true or false, got {self.pii_redaction!r}")
        if isinstance(self.pii_types, str) or not isinstance(self.pii_types, tuple | list):
            raise InputError(f"data.pii_types must be a list such as [email, phone], got {self.pii_types!r}")
        object.__setattr__(self, "pii_types", check_types(self.pii_types, "data.pii_types"))
        if self.missing_created_at not in MISSING_CREATED_AT:
            raise InputError(
                f"data.missing_created_at must be one of {', '.join(MISSING_CREATED_AT)}, got "
                f"{self.missing_created_at!r}; fix it in params.yaml or the launchpad config"
            )
        # validate now, so a typo fails before any row is read
        self.start  # noqa: B018
        self.column_map  # noqa: B018
        self.role_map  # noqa: B018

    @property
    def start(self) -> datetime:
        """The time of line 0 under the ``row_order`` policy."""
        start = parse_cutoff(self.row_order_start, "data.row_order_start", null_means=None)
        if start is None:
            raise InputError(
                "data.row_order_start must be an ISO-8601 time such as '2000-01-01T00:00:00Z', got null"
            )
        return start

    @property
    def column_map(self) -> dict[str, str]:
        """Canonical field -> your field name."""
        return _pairs(self.columns, "data.columns", ROW_FIELDS + TURN_FIELDS, unique_targets=True)

    @property
    def role_map(self) -> dict[str, str]:
        """Your role name (lower case) -> the canonical role it stands for."""
        pairs = _pairs(self.roles, "data.roles", ROLE_TARGETS, unique_targets=False, keyed_by_yours=True)
        return {yours.lower(): canonical for yours, canonical in pairs.items()}


def _pairs(
    entries: tuple[str, ...],
    setting: str,
    allowed: tuple[str, ...],
    *,
    unique_targets: bool,
    keyed_by_yours: bool = False,
) -> dict[str, str]:
    result: dict[str, str] = {}
    seen_yours: set[str] = set()
    for entry in entries:
        canonical, sep, yours = entry.partition("=") if isinstance(entry, str) else ("", "", "")
        canonical, yours = canonical.strip(), yours.strip()
        if not sep or not canonical or not yours:
            raise InputError(
                f"{setting} entry {entry!r} must be 'canonical=yours', e.g. 'output=response'; "
                "fix it in params.yaml"
            )
        if canonical not in allowed:
            raise InputError(
                f"{setting} entry {entry!r}: '{canonical}' is not one of {', '.join(allowed)}; "
                "the name before '=' is the canonical one"
            )
        if yours.lower() in seen_yours:
            raise InputError(f"{setting} names '{yours}' twice; give each of your names one meaning")
        seen_yours.add(yours.lower())
        if keyed_by_yours:
            result[yours] = canonical
            continue
        if unique_targets and canonical in result:
            raise InputError(f"{setting} maps '{canonical}' twice; keep one entry for it")
        result[canonical] = yours
    return result
