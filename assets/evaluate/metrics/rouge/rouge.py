"""ROUGE-L F-measure (Lin, 2004) as an ``evaluate`` metric that loads offline from this directory.

Load it with ``evaluate.load("<path to this directory>")``. Unlike the hub's ``rouge`` metric, words are
found with a Unicode-aware tokenizer (letters of every script, CJK ideographs one per token), so German,
Russian or Chinese answers are scored instead of being reduced to nothing by an ASCII-only tokenizer.
The score is the plain mean over examples (no bootstrap resampling), so it is deterministic.
"""

import re
import unicodedata

import datasets
import evaluate
from rouge_score import rouge_scorer

_CITATION = """\
@inproceedings{lin-2004-rouge,
    title = "{ROUGE}: A Package for Automatic Evaluation of Summaries",
    author = "Lin, Chin-Yew",
    booktitle = "Text Summarization Branches Out",
    year = "2004",
    publisher = "Association for Computational Linguistics",
}
"""

_INPUTS = """\
Args:
    predictions: list of generated texts.
    references: list of reference texts, one per prediction.
Returns:
    rougeL: mean ROUGE-L F-measure over the examples, in [0, 1].
"""

# Ideographs and kana carry a word's worth of meaning each and are written without spaces.
_CJK = r"\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_TOKEN = re.compile(rf"[{_CJK}]|[^\W{_CJK}]+")


class UnicodeWordTokenizer:
    """Case-folded, NFKC-normalized words; the interface ``rouge_score`` expects of a tokenizer."""

    def tokenize(self, text: str) -> list[str]:
        return _TOKEN.findall(unicodedata.normalize("NFKC", text).casefold())


class RougeL(evaluate.Metric):
    """ROUGE-L F-measure averaged over examples."""

    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description=__doc__,
            citation=_CITATION,
            inputs_description=_INPUTS,
            features=datasets.Features(
                {"predictions": datasets.Value("string"), "references": datasets.Value("string")}
            ),
        )

    def _compute(self, predictions: list[str], references: list[str]) -> dict[str, float]:
        scorer = rouge_scorer.RougeScorer(["rougeL"], tokenizer=UnicodeWordTokenizer())
        scores = [
            scorer.score(ref, pred)["rougeL"].fmeasure
            for pred, ref in zip(predictions, references, strict=True)
        ]
        return {"rougeL": sum(scores) / len(scores) if scores else 0.0}
