"""What a hyperparameter search leaves for people: ``best_params.yaml`` (a ``train:`` fragment to adopt),
``trials.csv``, a markdown trials table, a text sparkline and a PNG plot of the losses. Framework-free.
"""

from __future__ import annotations

import csv
import io
import textwrap
from collections.abc import Mapping
from pathlib import Path

import yaml

from assets.shared.text import markdown_cell
from assets.train.plot import sparkline
from assets.tune.search import COMPLETE, SearchResult
from resources.artifacts import atomic_directory, remove_leftovers, restore_swapped_directory

BEST_PARAMS_FILE = "best_params.yaml"
TRIALS_FILE = "trials.csv"


def best_params_yaml(result: SearchResult, provenance: Mapping[str, str]) -> str:
    """The best trial's values as a params.yaml ``train:`` fragment, headed by comments that say how it
    was found and how to adopt it. ``provenance`` (e.g. the DVC md5 of each input, the run id) is listed
    in the header."""
    best = result.best
    completed = sum(1 for trial in result.trials if trial.state == COMPLETE)
    length = (
        f"{result.base.max_steps} optimizer steps"
        if result.base.max_steps > 0
        else f"{result.base.epochs:g} epochs"
    )
    header = [
        "# Best settings of a hyperparameter search (python -m pipelines.tune, or the Dagster job",
        "# hyperparameter_search). Nothing changed params.yaml: adopting them is your step.",
        "#",
        "# To adopt: copy the keys under `train:` into the train section of params.yaml (each replaces",
        "# the key of the same name), then materialize adapter (`python -m pipelines.materialize adapter`,",
        "# `dvc repro` or the UI). To try them for one run first, paste them into the adapter asset's",
        "# config in the Dagster launchpad.",
        "#",
        "# Objective: validation loss (mean token cross-entropy on validation_split's assistant tokens),",
        f"# lowest {best.validation_loss:.6g} in trial {best.number} of {len(result.trials)} "
        f"({completed} completed).",
        f"# Method {result.base.method}; every trial trained {length} with train.seed {result.base.seed};",
        f"# Optuna TPE sampler, seed {result.sampler_seed}. Searched: "
        + "; ".join(f"{d.name} {d.describe()}" for d in result.space)
        + ".",
    ]
    header += [f"# {name}: {value}" for name, value in provenance.items()]
    header = [wrapped for line in header for wrapped in _comment_lines(line)]
    body = yaml.safe_dump({"train": dict(best.params)}, sort_keys=False, default_flow_style=False)
    return "\n".join(header) + "\n" + body


def _comment_lines(line: str, width: int = 100) -> list[str]:
    """A YAML comment line wrapped at ``width`` characters, each piece a comment."""
    if len(line) <= width:
        return [line]
    return ["# " + piece for piece in textwrap.wrap(line.removeprefix("# "), width - 2)]


def trials_csv(result: SearchResult) -> str:
    """One row per trial: number, state, validation loss, steps, seconds, each searched setting, reason."""
    names = [dimension.name for dimension in result.space]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["trial", "state", "validation_loss", "steps", "seconds", *names, "reason"])
    for trial in result.trials:
        writer.writerow(
            [
                trial.number,
                trial.state,
                "" if trial.validation_loss is None else repr(trial.validation_loss),
                "" if trial.steps is None else trial.steps,
                trial.seconds,
                *(trial.params.get(name, "") for name in names),
                trial.reason or "",
            ]
        )
    return buffer.getvalue()


def write_results(result: SearchResult, out_dir: Path, provenance: Mapping[str, str]) -> Path:
    """Replace ``out_dir`` with this search's ``best_params.yaml`` and ``trials.csv``, atomically: a
    search that fails part-way leaves the previous results as they were. Returns the best_params path."""
    # What a search killed while writing left beside out_dir (its writer is gone) is repaired first.
    restore_swapped_directory(out_dir)
    remove_leftovers(out_dir)
    with atomic_directory(out_dir) as staging:
        (staging / BEST_PARAMS_FILE).write_text(best_params_yaml(result, provenance), encoding="utf-8")
        (staging / TRIALS_FILE).write_text(trials_csv(result), encoding="utf-8")
    return out_dir / BEST_PARAMS_FILE


def _value(value: object) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def trials_table(result: SearchResult, limit: int | None = None) -> str:
    """The trials as a markdown table, best first (failed ones last, with their reason); at most
    ``limit`` rows, the rest counted in a last line."""
    names = [dimension.name for dimension in result.space]
    best = result.best.number
    ordered = sorted(
        result.trials,
        key=lambda t: (t.state != COMPLETE, t.validation_loss or 0.0, t.number),
    )
    shown = ordered if limit is None else ordered[:limit]
    lines = [
        "| trial | " + " | ".join(names) + " | validation loss | state | steps | s |",
        "|---|" + "---|" * len(names) + "---|---|---|---|",
    ]
    for trial in shown:
        loss = "" if trial.validation_loss is None else f"{trial.validation_loss:.4f}"
        state = "best" if trial.number == best else trial.state
        if trial.reason:
            state += f": {markdown_cell(trial.reason[:120])}"
        cells = [_value(trial.params.get(name, "")) for name in names]
        steps = "" if trial.steps is None else str(trial.steps)
        row = [str(trial.number), *cells, loss, state, steps, f"{trial.seconds:.0f}"]
        lines.append("| " + " | ".join(row) + " |")
    if len(ordered) > len(shown):
        lines.append(f"\n{len(ordered) - len(shown)} more trials in the full table and trials.csv.")
    return "\n".join(lines)


def loss_sparkline(result: SearchResult, width: int = 48) -> str:
    """A markdown table: the completed trials' validation losses in trial order, and the best so far,
    as lines of block characters (each line on its own scale, lowest ▁), with their range."""
    losses = [t.validation_loss for t in result.trials if t.validation_loss is not None]
    best_so_far = [min(losses[: i + 1]) for i in range(len(losses))]
    return "\n".join(
        [
            "| curve | first | lowest | by trial |",
            "|---|---|---|---|",
            f"| validation loss | {losses[0]:.4g} | {min(losses):.4g} | {sparkline(losses, width)} |",
            f"| best so far | {best_so_far[0]:.4g} | {best_so_far[-1]:.4g} | "
            f"{sparkline(best_so_far, width)} |",
        ]
    )


def search_plot_png(result: SearchResult) -> bytes:
    """Validation loss against each searched setting (log axis for log ranges), one panel each, plus
    loss by trial with the best so far; the best trial is marked."""
    import matplotlib

    matplotlib.use("Agg")  # no display on servers and CI
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter

    done = [t for t in result.trials if t.validation_loss is not None]
    best = result.best
    panels = len(result.space) + 1
    columns = min(panels, 3)
    rows = -(-panels // columns)
    figure, axes = plt.subplots(rows, columns, figsize=(3.2 * columns, 2.6 * rows), dpi=90, squeeze=False)
    flat = axes.ravel()
    numbers = [t.number for t in done]
    losses = [t.validation_loss for t in done]
    flat[0].plot(numbers, losses, "o", markersize=4, label="trial")
    best_so_far = [min(losses[: i + 1]) for i in range(len(losses))]
    flat[0].step(numbers, best_so_far, where="post", label="best so far")
    flat[0].set_xlabel("trial")
    flat[0].set_ylabel("validation loss")
    flat[0].legend(fontsize=7)
    for axis, dimension in zip(flat[1:], result.space, strict=False):
        values = [t.params[dimension.name] for t in done]
        if dimension.choices is not None:
            labels = [str(choice) for choice in dimension.choices]
            axis.set_xticks(range(len(labels)), labels)
            values = [labels.index(str(value)) for value in values]
            axis.set_xlim(-0.5, len(labels) - 0.5)
        elif dimension.log:
            axis.set_xscale("log")
            # Minor-tick labels of a short log range overlap one another.
            axis.xaxis.set_minor_formatter(NullFormatter())
        axis.plot(values, losses, "o", markersize=4)
        best_value = best.params[dimension.name]
        if dimension.choices is not None:
            best_value = [str(c) for c in dimension.choices].index(str(best_value))
        axis.plot([best_value], [best.validation_loss], "*", markersize=12, color="tab:red")
        axis.set_xlabel(dimension.name)
    for axis in flat[panels:]:
        axis.set_visible(False)
    for axis in flat[:panels]:
        axis.grid(alpha=0.3)
    figure.suptitle("hyperparameter search: validation loss (★ best)", fontsize=9)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    plt.close(figure)
    return buffer.getvalue()
