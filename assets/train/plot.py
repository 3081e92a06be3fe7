"""Training and validation loss curves for the adapter's Dagster metadata: sparklines inline, the PNG
(drawn in assets/shared/training_curves.py, which the registry's MLflow run uses too) one click away."""

from __future__ import annotations

import base64

from assets.shared.training_curves import loss_curve_png

__all__ = ["loss_curve_png", "loss_sparklines", "markdown_image", "sparkline"]


def markdown_image(png: bytes, alt: str) -> str:
    """Inline the PNG in markdown so the Dagster UI shows it without a file server."""
    return f"![{alt}](data:image/png;base64,{base64.b64encode(png).decode('ascii')})"


_BLOCKS = "▁▂▃▄▅▆▇█"


def sparkline(values: list[float], width: int = 48) -> str:
    """``values`` as one line of block characters (lowest ▁, highest █), averaged into at most
    ``width`` buckets: a curve short enough for the Dagster UI to show inline."""
    if not values:
        return ""
    buckets = min(width, len(values))
    means = []
    for bucket in range(buckets):
        chunk = values[bucket * len(values) // buckets : (bucket + 1) * len(values) // buckets]
        means.append(sum(chunk) / len(chunk))
    low, high = min(means), max(means)
    span = (high - low) or 1.0
    return "".join(_BLOCKS[round((value - low) / span * (len(_BLOCKS) - 1))] for value in means)


def loss_sparklines(history: list[dict], validation: list[dict] | None = None, width: int = 48) -> str:
    """Training and validation loss as a markdown table of sparklines with their step range and first,
    lowest and last values (each line scaled to its own range)."""
    lines = ["| curve | steps | first | lowest | last | shape |", "|---|---|---|---|---|---|"]
    curves = {
        "training": [(h["step"], h["loss"]) for h in history if "loss" in h and "step" in h],
        "validation": [
            (h["step"], h["eval_loss"]) for h in validation or [] if "eval_loss" in h and "step" in h
        ],
    }
    for name, points in curves.items():
        if not points:
            continue
        values = [float(v) for _, v in points]
        lines.append(
            f"| {name} | {points[0][0]}-{points[-1][0]} | {values[0]:.4g} | {min(values):.4g} | "
            f"{values[-1]:.4g} | {sparkline(values, width)} |"
        )
    return "\n".join(lines) if len(lines) > 2 else "no loss was logged"
