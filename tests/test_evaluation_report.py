"""The evaluation's comparison (assets/evaluate/compare.py) and its UI summary, on the tiny model with
real LoRA adapters: same rows for every model, per-row results, candidate-vs-base logits, and case 09
(test prompts longer than train.max_seq_length)."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest

from assets.evaluate.compare import evaluate_models
from assets.evaluate.scoring import EvalSettings
from assets.evaluate.summary import answers_table, rows_table
from assets.shared.chat import tokenize_rows
from assets.shared.training_record import TrainingRecord
from resources.model_loading import load_causal_lm, load_tokenizer, prepare_base_model

SHORT_ROWS = [
    {
        "id": f"short-{i}",
        "category": "math" if i % 2 else None,
        "messages": [
            {"role": "user", "content": f"What is {i} plus {i}?"},
            {"role": "assistant", "content": f"{i} plus {i} is {2 * i}."},
        ],
    }
    for i in range(3)
]


def stock_rows(count: int, seed: int = 7) -> list[dict[str, Any]]:
    """Case 09's rows: a pasted 45-line stock table as the prompt, a one-sentence total as the answer."""
    rng = random.Random(seed)
    words = [
        "anchor",
        "basil",
        "cobalt",
        "dune",
        "ember",
        "fjord",
        "garnet",
        "harbor",
        "indigo",
        "juniper",
        "kelp",
        "lantern",
        "meadow",
    ]
    rows = []
    for n in range(count):
        lines = [
            f"{rng.choice(words)}-{rng.choice(words)} {rng.randint(1, 999)} units shelf {rng.randint(1, 60)}"
            for _ in range(45)
        ]
        total = sum(int(line.split()[1]) for line in lines)
        question = "Here is today's stock list. How many units are there in total?\n" + "\n".join(lines)
        rows.append(
            {
                "id": f"long-{n:02d}",
                "category": None,
                "messages": [
                    {"role": "user", "content": question},
                    {"role": "assistant", "content": f"There are {total} units in total."},
                ],
            }
        )
    return rows


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The tiny base, an adapter that changes it (random A and B) and one that does not (B = 0, as
    LoRA initializes it)."""
    import torch
    from peft import LoraConfig, get_peft_model

    root = tmp_path_factory.mktemp("evaluation")
    base = root / "base"
    prepare_base_model("embedded", base, seed=0)
    paths = {"base": base}
    for name, init in (("changed", False), ("unchanged", True)):
        torch.manual_seed(0)
        model = load_causal_lm(base, quantization=None, dtype="float32", device="cpu")
        lora = LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", init_lora_weights=init)
        get_peft_model(model, lora).save_pretrained(root / name)
        TrainingRecord(
            settings={"quantization": None, "max_seq_length": 64},
            base_model={"source": "embedded"},
            method="lora",
        ).write(root / name)
        paths[name] = root / name
    return paths


def _evaluate(models: dict[str, Path], adapters: dict[str, str], rows: list, **kwargs: Any) -> dict[str, Any]:
    settings = kwargs.pop(
        "settings", EvalSettings(max_new_tokens=4, max_examples=2, batch_size=4, max_seq_length=64)
    )
    tokenizer = load_tokenizer(models["base"])
    chosen = {name: models[which] for name, which in adapters.items()}

    def load_base(quantization: str | None) -> Any:
        return load_causal_lm(models["base"], quantization=quantization, dtype="float32", device="cpu")

    return evaluate_models(load_base, tokenizer, chosen, rows, settings, **kwargs)


def test_every_model_is_scored_on_the_same_rows_and_each_row_is_reported(models: dict[str, Path]) -> None:
    report = _evaluate(models, {"candidate": "changed", "champion": "unchanged"}, SHORT_ROWS)
    assert set(report["models"]) == {"base", "candidate", "champion"}
    assert {m["n_scored"] for m in report["models"].values()} == {3}
    assert report["unscored"] == {} and report["max_tokens"] == 64
    examples = report["examples"]
    assert [e["id"] for e in examples] == ["short-0", "short-1", "short-2"]
    assert all(e["scored"] and e["reason"] is None and e["prompt_tokens_dropped"] == 0 for e in examples)
    assert all(set(e["loss"]) == {"base", "candidate", "champion"} for e in examples)
    # B = 0: the unchanged champion computes the base's losses; the changed candidate does not.
    for example in examples:
        assert example["loss"]["champion"] == pytest.approx(example["loss"]["base"], rel=1e-6)
        assert example["loss"]["candidate"] != pytest.approx(example["loss"]["base"], rel=1e-3)
    # The first max_examples rows carry the reference and each model's answer.
    assert [("generation" in e, "reference" in e) for e in examples] == [(True, True)] * 2 + [(False, False)]
    assert examples[0]["reference"] == "0 plus 0 is 0." and set(examples[0]["generation"]) == {
        "base",
        "candidate",
        "champion",
    }
    # Per-row losses and the perplexity agree: exp of the token-weighted mean.
    check = report["candidate_vs_base"]
    assert check["rows"] == 3 and check["max_abs_logit_diff"] > 1e-3
    assert 0 < check["mean_abs_logit_diff"] <= check["max_abs_logit_diff"]


def test_an_adapter_that_changes_nothing_shows_zero_logit_difference(models: dict[str, Path]) -> None:
    report = _evaluate(models, {"candidate": "unchanged"}, SHORT_ROWS)
    assert report["candidate_vs_base"] == {"max_abs_logit_diff": 0.0, "mean_abs_logit_diff": 0.0, "rows": 3}
    assert report["models"]["candidate"]["perplexity"] == pytest.approx(
        report["models"]["base"]["perplexity"]
    )


def test_a_champion_that_is_the_candidate_shares_its_results(models: dict[str, Path]) -> None:
    report = _evaluate(models, {"candidate": "changed"}, SHORT_ROWS, aliases={"champion": "candidate"})
    assert report["models"]["champion"] == report["models"]["candidate"]
    for example in report["examples"]:
        assert example["loss"]["champion"] == example["loss"]["candidate"]
    assert report["examples"][0]["generation"]["champion"] == report["examples"][0]["generation"]["candidate"]


def test_case_09_long_prompts_in_the_test_split_are_scored_with_their_prompts_cut_from_the_left(
    models: dict[str, Path],
) -> None:
    """Case 09: 30 rows whose pasted table makes the prompt far longer than train.max_seq_length = 256,
    and 3 short rows. Cut from the right (before), only the 3 short rows kept an answer token and the
    report still said n_examples 33; cut from the left, all 33 are scored and the report says so."""
    tokenizer = load_tokenizer(models["base"])
    rows = stock_rows(30) + SHORT_ROWS
    assert len(tokenize_rows(tokenizer, rows, max_seq_length=256)) == 3  # the case, reproduced
    settings = EvalSettings(max_new_tokens=8, max_examples=3, batch_size=8, max_seq_length=256)
    report = _evaluate(models, {"candidate": "changed"}, rows, settings=settings)
    for metrics in report["models"].values():
        assert metrics["n_examples"] == metrics["n_scored"] == 33 and metrics["n_unscored"] == 0
    long_rows = [e for e in report["examples"] if e["id"].startswith("long-")]
    assert len(long_rows) == 30 and all(e["scored"] and e["prompt_tokens_dropped"] > 256 for e in long_rows)
    assert all(e["answer_tokens"] > 3 for e in long_rows)
    assert report["candidate_vs_base"]["rows"] == 32


def test_case_09_an_answer_longer_than_the_budget_is_counted_with_its_reason(models: dict[str, Path]) -> None:
    rows = stock_rows(2) + SHORT_ROWS
    # The answer is the table itself: longer than the 64 tokens the adapter was trained on.
    rows[0]["messages"] = [{"role": "user", "content": "Repeat the list."}, rows[0]["messages"][0]]
    rows[0]["messages"][1] = {"role": "assistant", "content": rows[1]["messages"][0]["content"]}
    report = _evaluate(models, {"candidate": "changed"}, rows)
    assert report["unscored"] == {"answer_too_long": 1}
    assert {m["n_scored"] for m in report["models"].values()} == {4}
    assert {m["n_unscored"] for m in report["models"].values()} == {1}
    first = report["examples"][0]
    assert (first["scored"], first["reason"], "loss" in first) == (False, "answer_too_long", False)
    assert first["answer_tokens"] > 64
    # The generated rows are the first scored ones.
    assert [e["id"] for e in report["examples"] if "generation" in e] == ["long-01", "short-0"]


def test_the_ui_summary_counts_rows_and_shows_answers_side_by_side() -> None:
    table = rows_table(33, {"answer_too_long": 2}, 256)
    assert table.startswith("31 of 33 test rows scored") and "| not scored: answer_too_long | 2 |" in table
    examples = [
        {
            "id": "a",
            "prompt": "x" * 500 + " | the end?",
            "reference": "yes",
            "generation": {"base": "no", "candidate": "yes\nindeed", "champion": "maybe"},
        },
        {"id": "b", "scored": False},
    ]
    shown = answers_table(examples).splitlines()
    assert shown[0] == "| id | prompt | base | candidate | champion | reference |"
    assert len(shown) == 3 and shown[2].startswith("| a | …") and "\\| the end?" in shown[2]
    assert "| no | yes indeed | maybe | yes |" in shown[2]
