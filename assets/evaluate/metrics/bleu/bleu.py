"""Corpus BLEU (Papineni et al., 2002) computed by sacrebleu, as an ``evaluate`` metric that loads offline.

Load it with ``evaluate.load("<path to this directory>")``. The score is sacrebleu's, on its usual 0-100
scale, with one reference per prediction. ``tokenize`` picks sacrebleu's tokenizer: "13a" (the default,
the WMT standard), "intl" for text with non-ASCII punctuation, "zh" or "ja-mecab" for those languages.
"""

import datasets
import evaluate
import sacrebleu

_CITATION = """\
@inproceedings{post-2018-call,
    title = "A Call for Clarity in Reporting {BLEU} Scores",
    author = "Post, Matt",
    booktitle = "Proceedings of the Third Conference on Machine Translation: Research Papers",
    year = "2018",
    publisher = "Association for Computational Linguistics",
}
"""

_INPUTS = """\
Args:
    predictions: list of generated texts.
    references: list of reference texts, one per prediction.
    tokenize: sacrebleu tokenizer name (default "13a").
Returns:
    bleu: corpus BLEU in [0, 100].
    brevity_penalty: sacrebleu's brevity penalty in [0, 1].
"""


class Bleu(evaluate.Metric):
    """Corpus BLEU with one reference per prediction."""

    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description=__doc__,
            citation=_CITATION,
            inputs_description=_INPUTS,
            features=datasets.Features(
                {"predictions": datasets.Value("string"), "references": datasets.Value("string")}
            ),
        )

    def _compute(
        self, predictions: list[str], references: list[str], tokenize: str = "13a"
    ) -> dict[str, float]:
        result = sacrebleu.corpus_bleu(predictions, [references], tokenize=tokenize)
        return {"bleu": float(result.score), "brevity_penalty": float(result.bp)}
