"""Training and validation loss curves as a PNG, for the adapter's Dagster metadata."""

from __future__ import annotations

import base64
import io


def loss_curve_png(history: list[dict], *, title: str, validation: list[dict] | None = None) -> bytes:
    """Plot ``loss`` against ``step`` for every training history entry that has both, and ``eval_loss``
    against ``step`` for the validation entries, on one axis."""
    import matplotlib

    matplotlib.use("Agg")  # no display on servers and CI
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(6, 3.2), dpi=100)
    train = [(h["step"], h["loss"]) for h in history if "loss" in h and "step" in h]
    if train:
        axes.plot(*zip(*train, strict=True), marker="o", markersize=2, linewidth=1, label="training")
    evals = [(h["step"], h["eval_loss"]) for h in validation or [] if "eval_loss" in h and "step" in h]
    if evals:
        axes.plot(*zip(*evals, strict=True), marker="s", markersize=4, linewidth=1.5, label="validation")
    if train or evals:
        axes.legend()
    axes.set_xlabel("optimizer step")
    axes.set_ylabel("loss (mean token cross-entropy)")
    axes.set_title(title)
    axes.grid(alpha=0.3)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    plt.close(figure)
    return buffer.getvalue()


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
