"""Evaluation: the offline metric modules, row preparation (left truncation, unscored rows) and
assets/evaluate/scoring.py on the tiny model."""

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
from assets.evaluate.examples import keep_last, prepare_examples, token_budget, unscored_counts
from assets.evaluate.scoring import (
    METRICS_DIR,
    EvalSettings,
    answer_losses,
    generate_answers,
    perplexity,
    score_model,
)
from assets.shared.chat import tokenize_conversation
from assets.shared.errors import InputError
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


def _examples(tokenizer: Any, rows: list[dict], max_tokens: int = 128, max_new_tokens: int = 6) -> list:
    return prepare_examples(tokenizer, rows, max_tokens=max_tokens, max_new_tokens=max_new_tokens)


def test_perplexity_is_token_weighted_over_answers_and_independent_of_batching(
    model_and_tokenizer: tuple[Any, Any],
) -> None:
    import torch

    model, tokenizer = model_and_tokenizer
    model.train()
    examples = _examples(tokenizer, ROWS)
    [(total, count)] = answer_losses(model, examples[:1], pad_token_id=tokenizer.pad_token_id, batch_size=1)
    # The scored tokens are the ones training masks in: the answer and its end-of-sequence token.
    feature = tokenize_conversation(tokenizer, ROWS[0]["messages"], max_seq_length=128)
    assert count == sum(label != -100 for label in feature["labels"]) == examples[0].answer_tokens
    with torch.inference_mode():
        loss = model(**{k: torch.tensor([v]) for k, v in feature.items()}).loss
    assert total / count == pytest.approx(float(loss), rel=1e-5)
    assert perplexity([(total, count)]) == pytest.approx(math.exp(float(loss)), rel=1e-5)

    singles = answer_losses(model, examples, pad_token_id=tokenizer.pad_token_id, batch_size=1)
    batched = answer_losses(model, examples, pad_token_id=tokenizer.pad_token_id, batch_size=3)
    assert [t for t, _ in batched] == pytest.approx([t for t, _ in singles], rel=1e-5)
    assert perplexity(batched) == pytest.approx(
        math.exp(sum(t for t, _ in singles) / sum(c for _, c in singles)), rel=1e-5
    )
    assert model.training, "the model's training mode must be restored"


def test_generate_answers_is_greedy_and_independent_of_batching(model_and_tokenizer: tuple[Any, Any]) -> None:
    model, tokenizer = model_and_tokenizer
    model.train()
    prompts = [example.prompt_ids for example in _examples(tokenizer, ROWS)]
    singles = generate_answers(model, tokenizer, prompts, max_new_tokens=6, batch_size=1)
    assert model.training, "the model's training mode must be restored"
    assert generate_answers(model, tokenizer, prompts, max_new_tokens=6, batch_size=4) == singles
    assert len(singles) == len(ROWS) and all(isinstance(a, str) for a in singles)

    # The prompt is the conversation before the answer, rendered with the generation prompt.
    prompt = tokenizer.apply_chat_template(
        ROWS[0]["messages"][:2], tokenize=False, add_generation_prompt=True
    )
    ids = tokenizer(prompt, add_special_tokens=False, return_tensors="pt")["input_ids"]
    assert list(prompts[0]) == ids[0].tolist()
    expected = model.eval().generate(
        ids, max_new_tokens=6, do_sample=False, pad_token_id=tokenizer.pad_token_id
    )
    assert singles[0] == tokenizer.decode(expected[0, ids.shape[1] :], skip_special_tokens=True).strip()


def test_score_model_aggregates_honestly(
    model_and_tokenizer: tuple[Any, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    model, tokenizer = model_and_tokenizer
    settings = EvalSettings(max_new_tokens=4, max_examples=3, batch_size=2, max_seq_length=128)
    examples = _examples(tokenizer, ROWS, max_new_tokens=4)
    real = score_model(model, tokenizer, examples, settings)
    metrics = real.metrics
    assert metrics["n_examples"] == metrics["n_scored"] == 4 and metrics["n_unscored"] == 0
    assert metrics["n_generated"] == 3 and len(metrics["answers"]) == 3 and len(real.generations) == 3
    assert set(metrics["rougeL_by_category"]) == {"geo", "math"}
    sums = answer_losses(model, examples, pad_token_id=tokenizer.pad_token_id, batch_size=1)
    assert metrics["perplexity"] == pytest.approx(perplexity(sums), rel=1e-5)
    assert real.losses == pytest.approx([total / count for total, count in sums], rel=1e-5)

    # A model that answers exactly the references must score perfectly.
    answers = {example.prompt_ids: example.reference for example in examples}

    def perfect(_model: Any, _tokenizer: Any, prompts: list, **_: Any) -> list[str]:
        return [answers[tuple(ids)] for ids in prompts]

    monkeypatch.setattr(scoring, "generate_answers", perfect)
    ideal = score_model(model, tokenizer, examples, settings).metrics
    assert ideal["rougeL"] == pytest.approx(1.0) and ideal["bleu"] == pytest.approx(100.0)
    assert ideal["answer_exact_match"] == 1.0
    assert ideal["rougeL_by_category"] == {"geo": pytest.approx(1.0), "math": pytest.approx(1.0)}


@pytest.mark.parametrize(
    ("ids", "budget", "bos", "kept", "dropped"),
    [
        ([1, 2, 3], 5, 1, [1, 2, 3], 0),
        ([1, 2, 3, 4, 5], 3, 1, [1, 4, 5], 2),  # BOS stays first
        ([7, 2, 3, 4, 5], 3, 1, [3, 4, 5], 2),  # no BOS: the last tokens
        ([1, 2, 3, 4, 5], 1, 1, [5], 4),
        ([1, 2, 3, 4, 5], 2, None, [4, 5], 3),
    ],
)
def test_keep_last_cuts_from_the_left(
    ids: list, budget: int, bos: int | None, kept: list, dropped: int
) -> None:
    assert keep_last(ids, budget, bos_token_id=bos) == (kept, dropped)


@pytest.mark.parametrize(
    ("max_seq_length", "max_positions", "budget"), [(256, 512, 256), (1024, 512, 512), (256, None, 256)]
)
def test_the_token_budget_never_exceeds_the_models_positions(
    max_seq_length: int, max_positions: int | None, budget: int
) -> None:
    assert token_budget(max_seq_length, max_positions) == budget


def test_a_long_prompt_is_cut_from_the_left_and_the_answer_kept_whole(
    model_and_tokenizer: tuple[Any, Any],
) -> None:
    _, tokenizer = model_and_tokenizer
    question = " ".join(f"item {i} costs {i * 3} euros." for i in range(60)) + " What is the last price?"
    row = {"id": "long", "messages": [{"role": "user", "content": question}, ROWS[0]["messages"][2]]}
    full = _examples(tokenizer, [row], max_tokens=4096)[0]
    cut = _examples(tokenizer, [row], max_tokens=64, max_new_tokens=16)[0]
    assert full.prompt_tokens_dropped == 0 and full.scored and cut.scored
    assert len(cut.input_ids) == 64 and cut.input_ids[0] == tokenizer.bos_token_id
    assert cut.prompt_tokens_dropped == len(full.input_ids) - 64
    # The same answer tokens are scored, whole, with the prompt's end right before them.
    assert cut.answer_tokens == full.answer_tokens
    assert cut.labels[-cut.answer_tokens :] == full.labels[-full.answer_tokens :]
    assert cut.input_ids[1:] == full.input_ids[-63:]
    # Generation leaves room for max_new_tokens within the same budget.
    assert len(cut.prompt_ids) == 64 - 16 and cut.prompt_ids[-10:] == full.prompt_ids[-10:]
    assert cut.generation_prompt_tokens_dropped == len(full.prompt_ids) - 48


def test_a_row_whose_answer_alone_is_too_long_is_counted_not_scored(
    model_and_tokenizer: tuple[Any, Any],
) -> None:
    model, tokenizer = model_and_tokenizer
    long_answer = {"role": "assistant", "content": " ".join(["the answer goes on"] * 40)}
    rows = [*ROWS, {"id": "verbose", "category": "math", "messages": [ROWS[0]["messages"][1], long_answer]}]
    examples = _examples(tokenizer, rows, max_tokens=48, max_new_tokens=4)
    assert [e.reason for e in examples] == [None, None, None, None, "answer_too_long"]
    assert examples[-1].answer_tokens > 48 and not examples[-1].input_ids
    assert unscored_counts(examples) == {"answer_too_long": 1}
    settings = EvalSettings(max_new_tokens=4, max_examples=10, batch_size=2, max_seq_length=48)
    scores = score_model(model, tokenizer, examples, settings)
    assert scores.metrics["n_scored"] == scores.metrics["n_examples"] == 4
    assert scores.metrics["n_unscored"] == 1 and scores.losses[-1] is None
    # The unscored row changes nothing: the metrics are those of the scored rows alone.
    alone = score_model(model, tokenizer, examples[:4], settings).metrics
    assert scores.metrics["perplexity"] == pytest.approx(alone["perplexity"], rel=1e-6)
    assert scores.metrics["n_generated"] == 4
    with pytest.raises(InputError, match=r"train\.max_seq_length"):
        score_model(model, tokenizer, examples[4:], settings)


def test_max_new_tokens_must_leave_room_for_a_prompt(model_and_tokenizer: tuple[Any, Any]) -> None:
    _, tokenizer = model_and_tokenizer
    with pytest.raises(InputError, match=r"evaluate\.max_new_tokens"):
        _examples(tokenizer, ROWS, max_tokens=32, max_new_tokens=32)


@pytest.mark.parametrize("field", ["max_new_tokens", "max_examples", "batch_size", "max_seq_length"])
def test_eval_settings_name_the_wrong_field(field: str) -> None:
    values = {"max_new_tokens": 1, "max_examples": 1, "batch_size": 1, "max_seq_length": 1, field: 0}
    with pytest.raises(ValueError, match=field):
        EvalSettings(**values)
