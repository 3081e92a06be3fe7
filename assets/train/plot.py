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
