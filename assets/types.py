"""Type names for asset signatures.

Dagster evaluates the annotations of asset functions when the definitions load, so they must resolve
at run time; importing `datasets` for that would add a second to every UI start. Type checkers see the
real class, Dagster sees Any.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from datasets import Dataset
else:
    Dataset = Any

__all__ = ["Dataset"]
