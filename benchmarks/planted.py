"""Planted near duplicates: short support-desk rows (English, Chinese, Japanese) with known clusters.

Used by ``tests/test_dedup.py`` (a few hundred rows) and ``benchmarks/dedup.py`` (100k and 1M rows). Every
row is a user question and an assistant answer, a few sentences long, put together from phrase tables and
a made-up product name, so two originals are distinct tickets. A planted copy is one original with one
kind of edit:

- ``exact``: the same text;
- ``case``: some words upper- or title-cased, or the whole row lower-cased;
- ``whitespace``: doubled spaces, line breaks, tabs, ideographic spaces, leading and trailing spaces;
- ``punctuation``: spaces added before punctuation or dropped after it (``"Hi , there ?"``, ``"Hi,there"``);
- ``word``: one word (not a number) replaced by another, in the question or the answer;
- ``mixed``: case, whitespace and punctuation edits together;
- ``cjk_*``: the same on Chinese and Japanese rows (half-width punctuation, spaces between characters, one
  two-character word replaced).

Templated rows are planted too, as distinct examples that must all be kept (case 10 of the team's cases):
families of rows that share a question and answer template and differ in one slot that the answer
repeats (the device, the product), "How many minutes are there in N hours?" and "Convert N °C to
Fahrenheit." with their different, correct answers, and "How many strings does a violin have?" next to
"How many sides does a hexagon have?".

Ground truth is a cluster number per row (the original's); a copy always comes after its original, so a
dedup that keeps the earliest row of a cluster keeps the original. One seeded generator: the same arguments
give the same rows.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

EDIT_KINDS = ("exact", "case", "whitespace", "punctuation", "word", "mixed")
CJK_EDIT_KINDS = ("cjk_exact", "cjk_whitespace", "cjk_punctuation", "cjk_word")

_SYLLABLES = (
    *("ka", "zo", "ri", "vex", "lan", "mo", "tu", "pel", "qui", "dar", "sen", "bo", "nix", "ta", "lor"),
    *("fi", "gar", "mu", "zen", "ko", "ra", "vin", "del", "po", "sha", "tor", "ly", "can", "wex", "jo"),
)
_KINDS = ("app", "router", "printer", "portal", "camera", "speaker", "wallet", "planner", "player", "hub")
_FEATURES = (
    *("contacts", "invoices", "notifications", "saved passwords", "playlists", "shared folders"),
    *("two-factor codes", "payment methods", "profile picture", "dark mode", "language settings"),
    *("offline maps", "email signature", "auto-renewal", "guest access", "backup schedule", "sync settings"),
    *("read receipts", "storage quota", "export history", "time zone", "reminder sounds", "linked devices"),
    *("recovery email", "usage reports", "parental controls", "voice commands", "order history"),
)
_DEVICES = (
    *("an iPhone", "an Android phone", "a Windows laptop", "a MacBook", "a Chromebook", "an iPad"),
    *("a Linux desktop", "a work computer", "a shared tablet", "a smart TV", "a company phone"),
)
_OPENERS = (
    "",
    "",
    "",
    "Hi, ",
    "Hello, ",
    "Quick question: ",
    "Help please. ",
    "Good morning. ",
    "Hey team, ",
)
_PROBLEMS = (
    "I can't sign in to {product} on {device}",
    "{product} crashes when I open the {feature} page",
    "my {feature} in {product} are gone",
    "how do I change the {feature} in {product}",
    "{product} keeps asking me to verify my {feature}",
    "the {feature} screen in {product} stays blank on {device}",
    "why is {product} so slow with {feature} turned on",
    "can I move my {feature} from {product} to {device}",
    "{product} shows an error when I save my {feature}",
    "who can see my {feature} in {product}",
    "is there a way to turn off {feature} in {product}",
    "I was charged twice for {product}",
    "my {product} will not connect to {device}",
    "where did the {feature} button go in {product}",
)
_CONTEXTS = (
    *("", "", "", " since yesterday", " after the last update", " even after a restart"),
    *(" when I am on mobile data", " on the office network", " since I changed my password"),
    *(" and my colleague has the same problem", " and I need it for a meeting today"),
)
_STEPS = (
    "Sign out of {product} and sign in again.",
    "Open Settings and choose {feature}.",
    "Update {product} to the latest version from the store.",
    "Restart {device} and try once more.",
    "Clear the cache under Settings, then Storage.",
    "Check that {device} has the right date and time.",
    "Turn off any VPN while you do this.",
    "Tap Save and wait for the green check mark.",
    "Make sure you use the same account on every device.",
    "Remove {product} from the trusted list and add it back.",
    "Look under Account, then Privacy.",
    "Export a copy first so nothing is lost.",
    "Switch to a different network for a moment.",
    "Reset the {feature} to the defaults and set them up again.",
    "Wait ten minutes, because changes can take a while to sync.",
)
# Support answers name the product they are about, as the question does.
_LEADS = (
    "Sorry about the trouble with {product}.",
    "Thanks for reaching out about {product}.",
    "This is a known issue in {product}.",
    "Here is how to fix it in {product}.",
    "Good news: {product} can do that.",
)
# Generic steps, one of some 9000: a verb, an object, a place and a tail.
_VERBS = ("Open", "Check", "Reset", "Update", "Clear", "Turn off", "Turn on", "Remove", "Review", "Refresh")
_THINGS = (
    *("the cache", "your login session", "the app permissions", "the network settings", "the firmware"),
    *("the notification settings", "your saved devices", "the browser cookies", "the backup", "the add-ons"),
    *("the account recovery options", "the payment profile", "the storage settings", "the privacy settings"),
    *("the language pack", "the download queue", "the security keys", "the shared links"),
)
_PLACES = (
    *("in Settings", "on the Account page", "from the help menu", "in the admin console", "under Advanced"),
    *("on the device itself", "in the web dashboard", "in the mobile app", "on the Security tab"),
    *("from the system tray", "in the control panel", "on the Billing page"),
)
_TAILS = ("", " and wait a minute", " and try again", " before you sign in again", " and restart the app")
_CLOSINGS = ("", "", " Let us know if that does not help.", " Hope this helps!", " That should fix it.")
_REPLACEMENTS = (
    *("quickly", "really", "simply", "actually", "kindly", "still", "just", "also", "now", "then"),
    *("setting", "option", "screen", "button", "menu", "page", "account", "section", "profile", "panel"),
)

_ZH_PROBLEMS = (
    "我在{device}上登录不了{product}",
    "{product}打开{feature}页面就闪退",
    "怎么修改{product}里的{feature}",
    "{product}在{device}上一直提示验证{feature}",
    "为什么{product}的{feature}不见了",
)
_ZH_CONTEXTS = ("", "，从昨天开始的", "，更新之后就这样了", "，重启也没用")
_ZH_STEPS = (
    "请先退出{product}，再重新登录。",
    "打开设置，选择{feature}。",
    "把{product}更新到最新版本。",
    "重启{device}以后再试一次。",
    "在设置里清除缓存，然后重新打开。",
    "确认{device}的日期和时间是正确的。",
    "保存之后，等待几分钟让数据同步。",
)
_ZH_FEATURES = ("联系人", "发票", "通知", "保存的密码", "播放列表", "共享文件夹", "支付方式", "语言设置")
_ZH_DEVICES = ("苹果手机", "安卓手机", "笔记本电脑", "平板电脑", "智能电视", "公司电脑")
_JA_PROBLEMS = (
    "{device}で{product}にログインできません",
    "{product}で{feature}を開くと落ちます",
    "{product}の{feature}を変更する方法を教えてください",
    "{product}の{feature}が消えてしまいました",
)
_JA_CONTEXTS = ("", "。昨日からです", "。アップデートしてからです", "。再起動しても直りません")
_JA_STEPS = (
    "一度{product}からログアウトして、もう一度ログインしてください。",
    "設定を開いて{feature}を選んでください。",
    "{product}を最新版に更新してください。",
    "{device}を再起動してから、もう一度お試しください。",
    "設定からキャッシュを削除してください。",
    "保存したあと、数分ほど同期をお待ちください。",
)
_JA_FEATURES = ("連絡先", "請求書", "通知", "パスワード", "プレイリスト", "共有フォルダ", "支払い方法")
_JA_DEVICES = ("アイフォン", "アンドロイド端末", "ノートパソコン", "タブレット", "会社のパソコン")
# Two-character words a CJK "one word changed" edit may swap in.
_CJK_REPLACEMENTS = ("马上", "随后", "然后", "另外", "すぐ", "あと", "必ず", "まず")

_PARTS = (
    ("violin", "strings", "four"),
    ("guitar", "strings", "six"),
    ("hexagon", "sides", "six"),
    ("triangle", "sides", "three"),
    ("spider", "legs", "eight"),
    ("octopus", "arms", "eight"),
    ("week", "days", "seven"),
    ("cube", "faces", "six"),
)


@dataclass(frozen=True)
class PlantedSet:
    """Rows as ``[{role, content}]`` conversations, each with its cluster number and how it was made."""

    conversations: list[list[dict[str, str]]]
    clusters: list[int]
    kinds: list[str]

    def texts(self) -> list[str]:
        return ["\n".join(message["content"] for message in messages) for messages in self.conversations]


def _chat(question: str, answer: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]


def _product(rng: random.Random) -> str:
    name = "".join(rng.choice(_SYLLABLES) for _ in range(rng.randint(3, 4))).title()
    return f"{name} {rng.choice(_KINDS)}"


def _english(rng: random.Random, slots: Mapping[str, str]) -> list[dict[str, str]]:
    problem = rng.choice(_PROBLEMS).format(**slots)
    question = f"{rng.choice(_OPENERS)}{problem[0].upper()}{problem[1:]}{rng.choice(_CONTEXTS)}?"
    steps = [step.format(**slots) for step in rng.sample(_STEPS, rng.randint(1, 2))]
    steps += [_generic_step(rng) for _ in range(rng.randint(1, 2))]
    rng.shuffle(steps)
    lead = rng.choice(_LEADS).format(**slots)
    return _chat(question, f"{lead} {' '.join(steps)}{rng.choice(_CLOSINGS)}")


def _generic_step(rng: random.Random) -> str:
    return f"{rng.choice(_VERBS)} {rng.choice(_THINGS)} {rng.choice(_PLACES)}{rng.choice(_TAILS)}."


def _cjk(rng: random.Random) -> tuple[list[dict[str, str]], str]:
    lang = rng.choice(("zh", "ja"))
    problems, contexts, steps, features, devices = (
        (_ZH_PROBLEMS, _ZH_CONTEXTS, _ZH_STEPS, _ZH_FEATURES, _ZH_DEVICES)
        if lang == "zh"
        else (_JA_PROBLEMS, _JA_CONTEXTS, _JA_STEPS, _JA_FEATURES, _JA_DEVICES)
    )
    slots = {
        "product": _product(rng).split()[0],
        "feature": rng.choice(features),
        "device": rng.choice(devices),
    }
    end = "？" if lang == "zh" else "。"
    question = rng.choice(problems).format(**slots) + rng.choice(contexts) + end
    lead = ("关于{product}的问题：" if lang == "zh" else "{product}の件ですね。").format(**slots)
    answer = lead + "".join(step.format(**slots) for step in rng.sample(steps, rng.randint(2, 3)))
    return _chat(question, answer), lang


def _template_family(rng: random.Random, size: int) -> list[list[dict[str, str]]]:
    """Rows that share a question and an answer and differ in one slot, which the answer repeats."""
    slots = {"product": _product(rng), "feature": rng.choice(_FEATURES), "device": rng.choice(_DEVICES)}
    varied = rng.choice(("device", "feature"))
    problem = rng.choice([p for p in _PROBLEMS if "{" + varied + "}" in p])
    first = rng.choice([s for s in _STEPS if "{" + varied + "}" in s])
    steps = [first, *rng.sample([s for s in _STEPS if s != first], 2)]
    table = _DEVICES if varied == "device" else _FEATURES
    lead = rng.choice(_LEADS)
    rows = []
    for value in rng.sample(table, min(size, len(table))):
        filled = {**slots, varied: value}
        question = problem.format(**filled)
        answer = " ".join([lead.format(**filled), *(step.format(**filled) for step in steps)])
        rows.append(_chat(f"{question[0].upper()}{question[1:]}?", answer))
    return rows


def _numbered(index: int) -> list[dict[str, str]]:
    """Distinct rows of case 10's templates: minutes in N hours, N °C in Fahrenheit, parts of a thing."""
    value = index // 3 + 2
    if index % 3 == 0:
        question = f"How many minutes are there in {value} hours?"
        answer = f"{value} hours is {value * 60} minutes, because each hour has 60 minutes."
    elif index % 3 == 1:
        question = f"Convert {value} °C to Fahrenheit."
        answer = f"{value} °C is {value * 9 / 5 + 32:.1f} °F."
    else:
        thing, parts, number = _PARTS[(index // 3) % len(_PARTS)]
        question = f"How many {parts} does a {thing} have?"
        answer = f"A {thing} has {number} {parts}."
    return _chat(question, answer)


def _originals(
    rng: random.Random, count: int, templated: float
) -> list[tuple[list[dict[str, str]], str, str]]:
    """``count`` distinct rows: ``templated`` of them in template families, one in ten Chinese or Japanese."""
    rows: list[tuple[list[dict[str, str]], str, str]] = []
    numbered = 0
    while len(rows) < count * templated:
        if rng.random() < 0.8:
            rows.extend(
                (messages, "en", "templated") for messages in _template_family(rng, rng.randint(3, 8))
            )
        elif numbered < 3 * len(_PARTS):
            rows.append((_numbered(numbered), "en", "templated"))
            numbered += 1
        else:
            rows.append((_numbered(3 * rng.randrange(10**6) + rng.randint(0, 1)), "en", "templated"))
    while len(rows) < count:
        if rng.random() < 0.1:
            rows.append((*_cjk(rng), "original"))
        else:
            slots = {
                "product": _product(rng),
                "feature": rng.choice(_FEATURES),
                "device": rng.choice(_DEVICES),
            }
            rows.append((_english(rng, slots), "en", "original"))
    rows = rows[:count]
    rng.shuffle(rows)
    return rows


def _edit_words(text: str, rng: random.Random, change: str) -> str:
    words = text.split(" ")
    if change == "case" and rng.random() < 0.3:
        return text.lower()
    for index in rng.sample(range(len(words)), max(1, len(words) // 4)):
        if change == "case":
            words[index] = rng.choice((str.upper, str.title, str.lower))(words[index])
        else:
            words[index] += rng.choice(("  ", "\n", "\t", " \u3000"))
    edited = " ".join(words)
    return f"  {edited}\n" if change == "whitespace" else edited


def _edit_punctuation(text: str, rng: random.Random) -> str:
    out = []
    for position, char in enumerate(text):
        if char in ",.?!;:" and rng.random() < 0.7:
            out.append(" " + char)
        elif char == " " and position and text[position - 1] in ",;" and rng.random() < 0.7:
            continue
        else:
            out.append(char)
    return "".join(out)


def _replace_word(text: str, rng: random.Random) -> str:
    words = text.split(" ")
    index = rng.choice([i for i, word in enumerate(words) if word.isalpha() and len(word) >= 3])
    words[index] = rng.choice([word for word in _REPLACEMENTS if word != words[index].lower()])
    return " ".join(words)


def _replace_cjk_word(text: str, rng: random.Random) -> str:
    starts = [i for i in range(len(text) - 1) if text[i : i + 2].isalpha() and not text[i : i + 2].isascii()]
    start = rng.choice(starts)
    return text[:start] + rng.choice(_CJK_REPLACEMENTS) + text[start + 2 :]


def _edit(messages: Sequence[Mapping[str, str]], kind: str, rng: random.Random) -> list[dict[str, str]]:
    contents = [message["content"] for message in messages]
    if kind in ("word", "cjk_word"):
        # A part with a word to replace: the question or the answer, whichever is drawn and has one.
        editable = [i for i, c in enumerate(contents) if any(w.isalpha() and len(w) >= 3 for w in c.split())]
        target = rng.choice(editable or [0]) if kind == "word" else rng.randrange(len(contents))
        contents[target] = (_replace_word if kind == "word" else _replace_cjk_word)(contents[target], rng)
    elif kind in ("case", "whitespace"):
        contents = [_edit_words(content, rng, kind) for content in contents]
    elif kind == "punctuation":
        contents = [_edit_punctuation(content, rng) for content in contents]
    elif kind == "mixed":
        contents = [_edit_punctuation(_edit_words(c, rng, "case"), rng) for c in contents]
        contents = [_edit_words(content, rng, "whitespace") for content in contents]
    elif kind == "cjk_whitespace":
        contents = [" ".join(content) if rng.random() < 0.5 else content + "  " for content in contents]
    elif kind == "cjk_punctuation":
        table = str.maketrans({"，": ", ", "。": ". ", "？": "?", "、": ","})
        contents = [content.translate(table) for content in contents]
    return [{"role": m["role"], "content": c} for m, c in zip(messages, contents, strict=True)]


def planted_set(
    originals: int, *, duplicate_fraction: float = 0.3, templated: float = 0.1, seed: int = 0
) -> PlantedSet:
    """``originals`` distinct rows (``templated`` of them templated) and a planted copy of about
    ``duplicate_fraction`` of them, the edit kinds taken in turn, each somewhere after its original."""
    rng = random.Random(seed)
    placed: list[tuple[float, list[dict[str, str]], int, str]] = []
    turn = {"en": 0, "cjk": 0}
    for cluster, (messages, lang, origin) in enumerate(_originals(rng, originals, templated)):
        placed.append((cluster, messages, cluster, origin))
        if rng.random() < duplicate_fraction:
            script = "en" if lang == "en" else "cjk"
            kinds = EDIT_KINDS if script == "en" else CJK_EDIT_KINDS
            kind = kinds[turn[script] % len(kinds)]
            turn[script] += 1
            # Sorted by position, a copy lands after its original.
            placed.append((rng.uniform(cluster, originals), _edit(messages, kind, rng), cluster, kind))
    placed.sort(key=lambda row: row[0])
    return PlantedSet([r[1] for r in placed], [r[2] for r in placed], [r[3] for r in placed])


@dataclass(frozen=True)
class Scores:
    """Row-level scores of a dedup against the planted truth."""

    flagged: int
    true_duplicates: int
    true_positives: int
    recall: float
    precision: float
    recall_by_kind: dict[str, float]
    false_positives_by_kind: dict[str, int]


def score(planted: PlantedSet, kept_of: Mapping[int, int]) -> Scores:
    """Score ``kept_of`` (each flagged row -> the row it is a duplicate of) against the planted clusters.

    A flag is right when the row is a planted copy and the row it points at is in its cluster.
    """
    clusters = planted.clusters
    first: dict[int, int] = {}
    for index, cluster in enumerate(clusters):
        first.setdefault(cluster, index)
    copies = [index for index, cluster in enumerate(clusters) if first[cluster] != index]
    right = {i for i, kept in kept_of.items() if clusters[i] == clusters[kept] and first[clusters[i]] != i}
    by_kind: dict[str, list[int]] = {}
    for index in copies:
        by_kind.setdefault(planted.kinds[index], []).append(index)
    wrong: dict[str, int] = {}
    for index in set(kept_of) - right:
        wrong[planted.kinds[index]] = wrong.get(planted.kinds[index], 0) + 1
    return Scores(
        flagged=len(kept_of),
        true_duplicates=len(copies),
        true_positives=len(right),
        recall=len(right) / len(copies) if copies else 1.0,
        precision=len(right) / len(kept_of) if kept_of else 1.0,
        recall_by_kind={
            kind: sum(i in right for i in rows) / len(rows) for kind, rows in sorted(by_kind.items())
        },
        false_positives_by_kind=dict(sorted(wrong.items())),
    )
