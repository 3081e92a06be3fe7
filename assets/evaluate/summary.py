"""The evaluation report in markdown, for the Dagster UI: metrics per model, which rows were scored (and
why the others were not), and a few test prompts with each model's answer beside the reference."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from assets.evaluate.examples import UNSCORED_REASONS
from assets.shared.text import markdown_cell

METRIC_COLUMNS = ("perplexity", "rougeL", "bleu", "answer_exact_match", "n_scored", "n_unscored")
MODEL_ORDER = ("base", "candidate", "champion")


def metric_table(models: dict[str, dict[str, Any]]) -> str:
    """Models as rows, headline metrics as columns."""
    lines = ["| model | " + " | ".join(METRIC_COLUMNS) + " |", "|---" * (len(METRIC_COLUMNS) + 1) + "|"]
    for name, metrics in models.items():
        cells = [_number(metrics.get(column)) for column in METRIC_COLUMNS]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def rows_table(test_rows: int, unscored: dict[str, int], max_tokens: int) -> str:
    """How many test rows were scored and, per reason, how many were not."""
    scored = test_rows - sum(unscored.values())
    lines = [
        f"{scored} of {test_rows} test rows scored (prompts cut from the left to fit {max_tokens} tokens; "
        "answers never cut).",
        "",
        "| rows | count | why |",
        "|---|---|---|",
        f"| scored | {scored} | |",
    ]
    lines += [
        f"| not scored: {reason} | {count} | {_cell(UNSCORED_REASONS.get(reason, ''), 200)} |"
        for reason, count in unscored.items()
    ]
    return "\n".join(lines)


def answers_table(examples: Sequence[dict[str, Any]], limit: int = 5, width: int = 160) -> str:
    """The first ``limit`` generated rows: the prompt's last user turn (its end, as the model sees it
    after left truncation), each model's answer and the reference, side by side."""
    shown = [example for example in examples if "generation" in example][:limit]
    if not shown:
        return "No answer was generated (evaluate.max_examples, or no row could be scored)."
    names = [name for name in MODEL_ORDER if name in shown[0]["generation"]]
    lines = [
        "| id | prompt | " + " | ".join(names) + " | reference |",
        "|---" * (len(names) + 3) + "|",
    ]
    for example in shown:
        prompt = example.get("prompt", "")
        if len(prompt) > width:
            prompt = "…" + prompt[-width:]
        cells = [_cell(example["id"], 40), _cell(prompt, width + 1)]
        cells += [_cell(example["generation"][name], width) for name in names]
        cells.append(_cell(example["reference"], width))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _cell(text: str, width: int) -> str:
    """Text fit for one markdown table cell: one line, pipes escaped, at most ``width`` characters."""
    # Control characters (a random model's output has them) would break the table or the page.
    text = " ".join("".join(ch if ch.isprintable() else " " for ch in str(text)).split())
    if len(text) > width:
        text = text[: width - 1] + "…"
    return markdown_cell(text)


def _number(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "" if value is None else str(value)
