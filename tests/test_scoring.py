"""Evaluation: the offline metric modules and assets/evaluate/scoring.py on the tiny model."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from assets.evaluate import scoring
from assets.evaluate.scoring import METRICS_DIR, EvalSettings, generate_answers, perplexity, score_model
from assets.shared.chat import tokenize_conversation
from resources.model_loading import load_causal_lm, load_tokenizer, prepare_base_model

ROWS = [
    {
        "id": f"r{i}",
        "category": category,
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": question},
            {"role": "assistant", "content": answer},
        ],
    }
    for i, (category, question, answer) in enumerate(
        [
            ("math", "What is 2 plus 2?", "2 plus 2 is 4."),
            ("geo", "Was ist die Hauptstadt von Frankreich?", "Paris ist die Hauptstadt."),
            ("math", "What is 10 minus 3?", "It is 7."),
            (None, "Say hello.", "Hello there, nice to meet you!"),
        ]
    )
]


@pytest.fixture(scope="module")
def model_and_tokenizer(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Any]:
    base = tmp_path_factory.mktemp("base") / "base"
    prepare_base_model("embedded", base, seed=0)
    return load_causal_lm(base, quantization="nf4", dtype="float32", device="cpu"), load_tokenizer(base)


def _metric(name: str) -> Any:
    import evaluate

    return evaluate.load(str(METRICS_DIR / name))


def test_metric_modules_load_offline_with_an_empty_cache(tmp_path: Path) -> None:
    code = (
        "import evaluate, json, sys\n"
        f"d = {str(METRICS_DIR)!r}\n"
        "r = evaluate.load(d + '/rouge').compute(predictions=['a b c'], references=['a b d'])\n"
        "b = evaluate.load(d + '/bleu').compute(predictions=['a b c d'], references=['a b c d'])\n"
        "print(json.dumps({**r, **b}))\n"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    scores = json.loads(done.stdout.strip().splitlines()[-1])
    assert scores["rougeL"] == pytest.approx(2 / 3) and scores["bleu"] == pytest.approx(100.0)


@pytest.mark.parametrize(
    ("prediction", "reference", "expected"),
    [
        ("the cat sat", "the cat sat", 1.0),
        ("dogs bark", "the cat sat", 0.0),
        ("", "the cat sat", 0.0),
        # LCS "the sat" = 2 of 3 and 2 of 4 words: F = 2PR / (P + R) = 4/7.
        ("the dog sat", "the cat sat down", 4 / 7),
        # Case, accents and non-Latin scripts are words too.
        ("Der Zug fährt", "der zug fährt", 1.0),
        ("北京是首都", "北京是中国的首都", 2 * (5 / 5) * (5 / 8) / (5 / 5 + 5 / 8)),
    ],
)
def test_rouge_l(prediction: str, reference: str, expected: float) -> None:
    score = _metric("rouge").compute(predictions=[prediction], references=[reference])["rougeL"]
    assert score == pytest.approx(expected)


@pytest.mark.parametrize(
    ("predictions", "references", "expected"),
    [
        (["the cat sat on the mat"], ["the cat sat on the mat"], 100.0),
        (["dogs bark loudly"], ["the cat sat on the mat"], 0.0),
    ],
)
def test_bleu(predictions: list[str], references: list[str], expected: float) -> None:
    assert _metric("bleu").compute(predictions=predictions, references=references)["bleu"] == pytest.approx(
        expected
    )


def test_perplexity_is_token_weighted_over_answers_and_independent_of_batching(
    model_and_tokenizer: tuple[Any, Any],
) -> None:
    import torch

    model, tokenizer = model_and_tokenizer
    model.train()
    one = perplexity(model, tokenizer, ROWS[:1], max_seq_length=128, batch_size=1)
    feature = tokenize_conversation(tokenizer, ROWS[0]["messages"], max_seq_length=128)
    with torch.inference_mode():
        loss = model(**{k: torch.tensor([v]) for k, v in feature.items()}).loss
    assert one == pytest.approx(math.exp(float(loss)), rel=1e-5)

    batched = perplexity(model, tokenizer, ROWS, max_seq_length=128, batch_size=3)
    assert batched == pytest.approx(
        perplexity(model, tokenizer, ROWS, max_seq_length=128, batch_size=1), rel=1e-5
    )
    assert model.training, "the model's training mode must be restored"
    with pytest.raises(ValueError, match="max_seq_length"):
        perplexity(model, tokenizer, ROWS, max_seq_length=4, batch_size=2)


def test_generate_answers_is_greedy_and_independent_of_batching(model_and_tokenizer: tuple[Any, Any]) -> None:
    model, tokenizer = model_and_tokenizer
    model.train()
    singles = generate_answers(model, tokenizer, ROWS, max_new_tokens=6, batch_size=1)
    assert model.training, "the model's training mode must be restored"
    assert generate_answers(model, tokenizer, ROWS, max_new_tokens=6, batch_size=4) == singles
    assert len(singles) == len(ROWS) and all(isinstance(a, str) for a in singles)

    prompt = tokenizer.apply_chat_template(
        ROWS[0]["messages"][:2], tokenize=False, add_generation_prompt=True
    )
    ids = tokenizer(prompt, add_special_tokens=False, return_tensors="pt")["input_ids"]
    expected = model.eval().generate(
        ids, max_new_tokens=6, do_sample=False, pad_token_id=tokenizer.pad_token_id
    )
    assert singles[0] == tokenizer.decode(expected[0, ids.shape[1] :], skip_special_tokens=True).strip()


def test_score_model_aggregates_honestly(
    model_and_tokenizer: tuple[Any, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    model, tokenizer = model_and_tokenizer
    settings = EvalSettings(max_new_tokens=4, max_examples=3, batch_size=2, max_seq_length=128)
    real = score_model(model, tokenizer, ROWS, settings)
    assert real["n_examples"] == 4 and real["n_generated"] == 3 and len(real["answers"]) == 3
    assert set(real["rougeL_by_category"]) == {"geo", "math"}
    assert real["perplexity"] == pytest.approx(
        perplexity(model, tokenizer, ROWS, max_seq_length=128, batch_size=2)
    )

    # A model that answers exactly the references must score perfectly.
    def perfect(_model: Any, _tokenizer: Any, rows: list, **_: Any) -> list[str]:
        return [row["messages"][-1]["content"] for row in rows]

    monkeypatch.setattr(scoring, "generate_answers", perfect)
    ideal = score_model(model, tokenizer, ROWS, settings)
    assert ideal["rougeL"] == pytest.approx(1.0) and ideal["bleu"] == pytest.approx(100.0)
    assert ideal["answer_exact_match"] == 1.0
    assert ideal["rougeL_by_category"] == {"geo": pytest.approx(1.0), "math": pytest.approx(1.0)}


@pytest.mark.parametrize("field", ["max_new_tokens", "max_examples", "batch_size", "max_seq_length"])
def test_eval_settings_name_the_wrong_field(field: str) -> None:
    values = {"max_new_tokens": 1, "max_examples": 1, "batch_size": 1, "max_seq_length": 1, field: 0}
    with pytest.raises(ValueError, match=field):
        EvalSettings(**values)
