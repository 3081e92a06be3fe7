"""Score the base model and each adapter on the same rows, loading the base only once."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def evaluate_models(
    base_model: Any, tokenizer: Any, adapters: dict[str, Path], rows: list[dict], settings: Any
) -> dict[str, dict[str, Any]]:
    """Metrics for "base" and for each named adapter, all on ``rows``.

    The base is scored first, before any LoRA layer is injected; adapters are then attached to the
    same base in turn, so a real multi-GB base is loaded once for the whole comparison.
    """
    from peft import PeftModel

    from assets.evaluate.scoring import score_model

    results = {"base": score_model(base_model, tokenizer, rows, settings)}
    peft_model = None
    for name, path in adapters.items():
        if peft_model is None:
            peft_model = PeftModel.from_pretrained(base_model, str(path), adapter_name=name)
        else:
            peft_model.load_adapter(str(path), adapter_name=name)
        peft_model.set_adapter(name)
        peft_model.eval()
        results[name] = score_model(peft_model, tokenizer, rows, settings)
    return results
