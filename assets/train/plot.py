"""The training loss curve as a PNG, for the adapter's Dagster metadata."""

from __future__ import annotations

import base64
import io


def loss_curve_png(history: list[dict], *, title: str) -> bytes:
    """Plot `loss` against `step` for every history entry that has both."""
    import matplotlib

    matplotlib.use("Agg")  # no display on servers and CI
    import matplotlib.pyplot as plt

    steps = [h["step"] for h in history if "loss" in h and "step" in h]
    losses = [h["loss"] for h in history if "loss" in h and "step" in h]
    figure, axes = plt.subplots(figsize=(6, 3.2), dpi=100)
    if steps:
        axes.plot(steps, losses, marker="o", markersize=2, linewidth=1)
    axes.set_xlabel("step")
    axes.set_ylabel("training loss")
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
