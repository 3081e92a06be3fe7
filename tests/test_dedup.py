"""Near-duplicate detection (assets/shared/neardup.py, used by clean and split): character shingles,
MinHash candidates, the rules that keep template rows apart, groups, clusters, and recall and precision
on planted near duplicates."""

from __future__ import annotations

import numpy as np
import pytest

from assets.shared.neardup import (
    ConversationParts,
    answer_follows_question,
    candidate_probability,
    find_near_duplicates,
    lsh_bands,
    minhash_signatures,
    prompt_and_answer,
)
from assets.shared.shingles import comparison_text, jaccard, numbers, shingle_hashes, shingle_set, words
from benchmarks.planted import CJK_EDIT_KINDS, EDIT_KINDS, planted_set, score


def near(texts: list[str], threshold: float = 0.7, **kwargs: object) -> dict[int, int]:
    """Dropped row -> kept row, with the clean stage's defaults."""
    report = find_near_duplicates(texts, threshold=threshold, num_permutations=128, shingle_size=5, **kwargs)
    return {index: item.kept_index for index, item in report.duplicates.items()}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Hello ,  World!", "helloworld"),
        ("HELLO\tworld ?", "helloworld"),
        ("zero\u200bwidth", "zerowidth"),
        ("如何 重置 密码？", "如何重置密码"),
        ("ＦＵＬＬ　width", "fullwidth"),
        ("Convert 103 °C", "convert103°c"),
    ],
)
def test_comparison_text_ignores_case_spacing_and_punctuation(text: str, expected: str) -> None:
    assert comparison_text(text) == expected


@pytest.mark.parametrize(
    ("text", "size", "expected"),
    [
        ("abcdef", 5, {"abcde", "bcdef"}),
        ("abc", 5, {"abc"}),
        ("", 5, set()),
        ("ababab", 2, {"ab", "ba"}),
    ],
)
def test_shingle_set(text: str, size: int, expected: set[str]) -> None:
    assert shingle_set(text, size) == expected


def test_shingle_hashes_match_the_shingle_sets() -> None:
    texts = ["abcdefgh", "", "abc", "abcdefgh", "如何重置密码吗", "xy"]
    hashes, offsets = shingle_hashes(texts, 5)
    assert offsets.tolist()[0] == 0 and len(offsets) == len(texts) + 1
    rows = [hashes[offsets[i] : offsets[i + 1]] for i in range(len(texts))]
    assert [len(set(row.tolist())) for row in rows] == [len(shingle_set(text, 5)) for text in texts]
    assert rows[0].tolist() == rows[3].tolist()
    assert not set(rows[0].tolist()) & set(rows[2].tolist())


@pytest.mark.parametrize(("threshold", "permutations"), [(0.7, 128), (0.8, 128), (0.5, 64), (1.0, 16)])
def test_lsh_bands_reach_the_target_recall(threshold: float, permutations: int) -> None:
    bands, rows = lsh_bands(permutations, threshold)
    assert bands * rows <= permutations
    assert candidate_probability(threshold, bands=bands, rows=rows) >= 0.98


def test_minhash_estimates_jaccard_and_is_deterministic() -> None:
    left = "".join(f"{i:03d}" for i in range(60))
    right = "".join(f"{i:03d}" for i in range(20, 80))
    truth = jaccard(shingle_set(left, 5), shingle_set(right, 5))
    signatures = minhash_signatures([left, right, ""], num_permutations=512, seed=3, size=5)
    assert signatures.shape == (3, 512) and signatures.dtype == np.uint32
    assert abs(float(np.mean(signatures[0] == signatures[1])) - truth) < 0.08
    assert (signatures[2] == np.iinfo(np.uint32).max).all()
    assert np.array_equal(
        signatures, minhash_signatures([left, right, ""], num_permutations=512, seed=3, size=5)
    )


def test_threshold_is_inclusive() -> None:
    texts = [
        "Please restart the router and wait two minutes before you try again",
        "Please restart the modem and wait two minutes before you try again",
    ]
    similarity = jaccard(*(shingle_set(comparison_text(text), 5) for text in texts))
    assert 0.5 < similarity < 1
    report = find_near_duplicates(texts, threshold=similarity, num_permutations=128, shingle_size=5)
    assert report.duplicates[1].jaccard == pytest.approx(similarity)
    assert near(texts, threshold=similarity + 0.01) == {}


@pytest.mark.parametrize(
    "copy",
    [
        "HOW DO I RESET MY PASSWORD? Open Settings, then Account, and tap Reset password.",
        "How do I reset my password ? Open Settings , then Account , and tap Reset password .",
        "How  do I reset\tmy password?\nOpen Settings, then Account, and tap Reset password.",
        "How can I reset my password? Open Settings, then Account, and tap Reset password.",
    ],
    ids=["case", "punctuation-spacing", "whitespace", "one-word"],
)
def test_short_row_edits_are_near_duplicates(copy: str) -> None:
    original = "How do I reset my password? Open Settings, then Account, and tap Reset password."
    assert near([original, "Where is my invoice? It is under Billing.", copy]) == {2: 0}


@pytest.mark.parametrize(
    "copy",
    [
        "我在苹果手机上怎么修改联系人？请打开设置，选择联系人，然后点击保存，修改会立即同步。",  # exact
        " ".join("我在苹果手机上怎么修改联系人？请打开设置，选择联系人，然后点击保存，修改会立即同步。"),
        "我在苹果手机上怎么修改联系人?请打开设置,选择联系人,然后点击保存,修改会立即同步.",  # half-width
        "我在苹果手机上怎样修改联系人？请打开设置，选择联系人，然后点击保存，修改会立即同步。",  # one word
    ],
    ids=["exact", "spaces", "half-width", "one-word"],
)
def test_chinese_near_duplicates(copy: str) -> None:
    original = "我在苹果手机上怎么修改联系人？请打开设置，选择联系人，然后点击保存，修改会立即同步。"
    found = near([original, "为什么打印机总是离线？请重新连接无线网络。", copy])
    assert found == {2: 0}


def test_japanese_one_word_changed() -> None:
    original = (
        "スマホアプリで連絡先を変更するにはどうすればいいですか？設定から連絡先を選び、保存を押してください。"
    )
    copy = (
        "スマホアプリで連絡先を変更するにはどうしたらいいですか？設定から連絡先を選び、保存を押してください。"
    )
    assert near([original, copy]) == {1: 0}


def test_rows_with_other_numbers_are_never_near_duplicates() -> None:
    # Case 10: one template, different numbers, different correct answers.
    texts = [
        f"How many minutes are there in {hours} hours? {hours} hours is {hours * 60} minutes, because each "
        "hour has 60 minutes."
        for hours in (2, 3, 5, 7, 9, 12)
    ]
    assert near(texts, threshold=0.5) == {}
    assert numbers(texts[0]) == ("2", "2", "120", "60")


@pytest.mark.parametrize(
    ("left", "right", "follows"),
    [
        # the subject changes in the question and its answer: two examples of one template
        (
            ("How many strings does a violin have?", "A violin has four strings."),
            ("How many sides does a hexagon have?", "A hexagon has six sides."),
            True,
        ),
        (
            ("My Mobo hub will not connect to an iPad.", "Restart the iPad and try once more."),
            ("My Mobo hub will not connect to an iPhone.", "Restart the iPhone and try once more."),
            True,
        ),
        # an edited question with the same answer, or the same question with an edited answer: a copy
        (
            ("How do I reset my password?", "Open Settings and tap Reset."),
            ("How can I reset my password?", "Open Settings and tap Reset."),
            False,
        ),
        (
            ("How do I reset my password?", "Open Settings and tap Reset."),
            ("How do I reset my password?", "Open Settings, then tap Reset."),
            False,
        ),
        # spaces put between letters change no word
        (("重置Fivex密码", "打开Fivex设置"), ("重 置 F i v e x 密 码", "打 开 F i v e x 设 置"), False),
        (("我在苹果手机上登录", "重启苹果手机"), ("我在安卓手机上登录", "重启安卓手机"), True),
    ],
)
def test_answer_follows_question(left: tuple[str, str], right: tuple[str, str], follows: bool) -> None:
    assert answer_follows_question(left, right) is follows


def test_template_rows_whose_answer_follows_are_kept_apart() -> None:
    rows = [
        (
            f"My Mobo hub will not connect to {device} since the last update.",
            f"Sorry about the trouble with "
            f"Mobo hub. Restart {device}, turn off any VPN and wait ten minutes before you pair them again.",
        )
        for device in ("an iPad", "an iPhone", "an iPad")
    ]
    rows[2] = (rows[2][0].upper(), rows[2][1])
    texts = ["\n".join(row) for row in rows]
    assert near(texts) == {1: 0, 2: 0}
    report = find_near_duplicates(texts, threshold=0.7, num_permutations=128, shingle_size=5, parts=rows)
    assert {i: item.kept_index for i, item in report.duplicates.items()} == {2: 0}
    assert report.kept_apart["answer_follows_question"] == 2


def test_clusters_keep_the_earliest_row_and_name_their_size() -> None:
    base = "Open the billing page, choose invoices and download the one you need as a PDF file"
    texts = [
        "An unrelated question about printers that never connect to the office network at all",
        base,
        base.replace("download", "fetch"),
        "Another unrelated row: the camera app freezes whenever the phone storage is almost full",
        base.replace("download", "fetch").replace("need", "want"),
    ]
    report = find_near_duplicates(texts, threshold=0.7, num_permutations=128, shingle_size=5)
    assert {i: d.kept_index for i, d in report.duplicates.items()} == {2: 1, 4: 1}
    assert report.duplicates[4].match_index == 2
    assert {d.cluster_size for d in report.duplicates.values()} == {3}
    assert report.clusters == 1


TWINS = [
    "Please restart the router and wait two minutes before you try to sign in again",
    "Please restart the router and wait two minutes before you try to log in again",
]


@pytest.mark.parametrize(
    ("groups", "expected"),
    [
        (None, {1: 0}),
        ([None, None], {1: 0}),
        (["g", "h"], {1: 0}),
        (["g", None], {1: 0}),
        # sibling answers of one tree or thread are alternatives, not duplicates
        (["g", "g"], {}),
    ],
)
def test_near_duplicates_within_a_group_are_not_linked(
    groups: list[str | None] | None, expected: dict[int, int]
) -> None:
    assert near(TWINS, groups=groups) == expected


@pytest.mark.parametrize(
    ("groups", "expected"),
    [
        ([None, None, None], {1: 0, 2: 0}),
        # row 2 reaches row 0 only through row 1; it stays with row 0, its own group's kept row
        (["g", None, "g"], {1: 0}),
        # siblings 0 and 1 both stay, joined through row 2, which is still a near copy of them
        (["g", "g", None], {2: 0}),
    ],
)
def test_a_group_is_not_linked_through_another_row(
    groups: list[str | None], expected: dict[int, int]
) -> None:
    texts = [TWINS[0], TWINS[0] + " now", TWINS[0] + " now please"]
    report = find_near_duplicates(texts, threshold=0.7, num_permutations=128, shingle_size=5, groups=groups)
    assert {i: d.kept_index for i, d in report.duplicates.items()} == expected
    assert all(not groups[i] or groups[i] != groups[d.match_index] for i, d in report.duplicates.items())


def test_one_group_and_one_part_per_text() -> None:
    with pytest.raises(ValueError, match="group ids"):
        near(TWINS, groups=["g"])
    with pytest.raises(ValueError, match="parts"):
        near(TWINS, parts=[("a", "b")])


def test_empty_and_tiny_inputs() -> None:
    assert near([]) == {}
    assert near(["", ""]) == {}
    assert near(["?!", "..."]) == {}
    assert near(["ok", "OK!"]) == {1: 0}


def test_words_split_scripts_without_spaces() -> None:
    assert words("Hello, World") == {"hello", "world"}
    assert words("重置Fivex密码") == {"重", "置", "fivex", "密", "码"}


def test_prompt_and_answer() -> None:
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello"},
        {"role": "user", "content": "Bye"},
        {"role": "assistant", "content": "Goodbye"},
    ]
    assert prompt_and_answer(messages) == ("Be brief.\nHi\nBye", "Hello\nGoodbye")


def test_planted_near_duplicates_recall_and_precision() -> None:
    planted = planted_set(400, seed=7)
    parts = ConversationParts(planted.conversations)
    assert parts[0] == prompt_and_answer(planted.conversations[0]) and len(parts) == len(planted.clusters)
    report = find_near_duplicates(
        planted.texts(), threshold=0.7, num_permutations=128, shingle_size=5, parts=parts
    )
    scores = score(planted, {index: item.kept_index for index, item in report.duplicates.items()})
    # Every kind is planted, CJK included, and so are template rows that must all be kept.
    assert set(scores.recall_by_kind) == set(EDIT_KINDS) | set(CJK_EDIT_KINDS)
    assert "templated" in planted.kinds and scores.true_duplicates >= 100
    assert scores.recall >= 0.95 and scores.precision >= 0.95, scores
    assert min(scores.recall_by_kind.values()) >= 0.9, scores.recall_by_kind
    assert scores.false_positives_by_kind.get("templated", 0) == 0


def test_planted_set_is_deterministic() -> None:
    assert planted_set(50, seed=3) == planted_set(50, seed=3)
    first = planted_set(50, seed=3)
    seen: set[int] = set()
    for cluster, kind in zip(first.clusters, first.kinds, strict=True):
        # a copy always comes after its original
        assert (kind in ("original", "templated")) == (cluster not in seen)
        seen.add(cluster)
