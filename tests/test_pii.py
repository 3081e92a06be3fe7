"""PII redaction at ingest: what becomes a placeholder, what never does, and where it applies (every
text raw_examples writes: turns, tool calls, tool definitions, the original text, error details)."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

import dagster as dg
import pyarrow.parquet as pq
import pytest

from assets.clean.pipeline import clean_rows
from assets.ingest.normalize import normalize_file
from assets.ingest.redaction import redact_row
from assets.ingest.settings import IngestOptions
from assets.shared.errors import InputError
from assets.shared.pii import PII_TYPES, redact
from tests.conftest import materialize_raw
from tests.test_hygiene import HYGIENE

REDACTING = IngestOptions(pii_redaction=True)
# PII that must not survive anywhere, as the patterns below plant it
LEAKS = re.compile(r"gmail|4111|7946|8\.8\.8\.8|GB82")


@pytest.mark.parametrize(
    ("text", "expected", "counts"),
    [
        (
            "Write to jane.doe@gmail.com or JOHN_SMITH+news@mail.co.uk.",
            "Write to <EMAIL> or <EMAIL>.",
            {"email": 2},
        ),
        ("Call +44 20 7946 0958 or +1 (212) 555-0182.", "Call <PHONE> or <PHONE>.", {"phone": 2}),
        ("+33 6 12 34 56 78", "<PHONE>", {"phone": 1}),
        (
            "Mine is (212) 555-0182, office 212-555-0182, fax 212.555.0182, free 1-800-555-0199.",
            "Mine is <PHONE>, office <PHONE>, fax <PHONE>, free <PHONE>.",
            {"phone": 4},
        ),
        ("Telefon: 030 1234567", "Telefon: <PHONE>", {"phone": 1}),
        ("Tel. 06 12 34 56 78, ask for Ana", "Tel. <PHONE>, ask for Ana", {"phone": 1}),
        ("Visa 4111 1111 1111 1111 expires soon", "Visa <CARD> expires soon", {"card": 1}),
        ("4111-1111-1111-1111 or 4111111111111111", "<CARD> or <CARD>", {"card": 2}),
        ("Amex 3782 822463 10005 and 378282246310005.", "Amex <CARD> and <CARD>.", {"card": 2}),
        ("IBAN DE89 3704 0044 0532 0130 00 PLEASE", "IBAN <IBAN> PLEASE", {"iban": 1}),
        ("Pay GB82WEST12345698765432.", "Pay <IBAN>.", {"iban": 1}),
        ("Server 8.8.8.8:53 answered.", "Server <IP>:53 answered.", {"ip": 1}),
        ("It came from 2a00:1450:4001:82a::200e.", "It came from <IP>.", {"ip": 1}),
        # cards split by dots, slashes or mixed separators, lowercase IBANs, full-width text (NFKC)
        ("4111.1111.1111.1111 and 4111/1111/1111/1111", "<CARD> and <CARD>", {"card": 2}),
        ("Card 4111 1111-1111 1111, thanks", "Card <CARD>, thanks", {"card": 1}),
        ("pay gb82west12345698765432 today", "pay <IBAN> today", {"iban": 1}),
        ("mail ｊｏｈｎ＠ｇｍａｉｌ．ｃｏｍ now", "mail <EMAIL> now", {"email": 1}),
        ("card ４１１１１１１１１１１１１１１１.", "card <CARD>.", {"card": 1}),
        ("ﬁnd x@gmail.com ﬁrst", "ﬁnd <EMAIL> ﬁrst", {"email": 1}),
        (
            "jane@gmail.com, +44 20 7946 0958, 4111 1111 1111 1111, GB82WEST12345698765432, 8.8.8.8",
            "<EMAIL>, <PHONE>, <CARD>, <IBAN>, <IP>",
            {"email": 1, "phone": 1, "card": 1, "iban": 1, "ip": 1},
        ),
    ],
)
def test_redacts_each_type(text: str, expected: str, counts: dict[str, int]) -> None:
    redacted, found = redact(text)
    assert redacted == expected
    assert dict(found) == counts


@pytest.mark.parametrize(
    "text",
    [
        # years, dates, times, prices, measurements, versions, plain numbers
        "In 2025, and from 1999-2004.",
        "Released on 2024-01-05T10:00:00+02:00, at 10:30:00.",
        "It costs $1,299.99 or 1 299 € (or 12 345 678 yen).",
        "Water boils at 103 °C at that pressure; 114 °C = 237.2 °F; +5 °C and +10.5%.",
        "Python 3.11.4, v1.2.3.4, version 1.2.3.4, release 2.0.0.1, build 8.8.8.8 of the app.",
        "Call 911. The phone costs $1,299.99; the phone was released on 2023-09-12.",
        "ISBN 978-3-16-148410-0; RFC 2616 section 14.9; 10,000,000 rows; epoch 1736000000000.",
        "Between 555 and 1234; 123-456-7890 is not a valid North American number.",
        # numbers that fail their checksum
        "Card 4111 1111 1111 1112; order 1234567890123456.",
        "Card 4111.1111.1111.1112 or 4111/1111/1111/1112; dates 2025.01.01 and 01/02/2025.",
        "ｈｅｌｌｏ ４２, ﬁne: full-width text without PII is kept as written.",
        "Bad IBAN DE89 3704 0044 0532 0130 01.",
        # documentation and private addresses identify nobody
        "Use name@example.com or someone@mail.example.org, or a@b.test, in examples.",
        "Router 192.168.1.1, local 127.0.0.1, 10.0.0.7, docs 203.0.113.5, 2001:db8::1, fe80::1, ::1.",
        # code and hardware identifiers
        "Use std::vector or Add::add(a, b); MAC 00:1A:2B:3C:4D:5E; 255.255.255.0 is a netmask.",
    ],
)
def test_never_redacts(text: str) -> None:
    assert redact(text) == (text, {})


def test_only_the_chosen_types() -> None:
    text = "jane@gmail.com, +44 20 7946 0958, 8.8.8.8"
    assert redact(text, ["email"])[0] == "<EMAIL>, +44 20 7946 0958, 8.8.8.8"
    assert redact(text, ["ip", "phone"])[0] == "jane@gmail.com, <PHONE>, <IP>"
    assert redact(text, [])[0] == text


def test_redaction_is_idempotent() -> None:
    once, _ = redact("jane@gmail.com at +44 20 7946 0958")
    assert redact(once) == (once, {})


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # zero-width space, soft hyphen, word joiner and a BOM inside the span
        ("Mail jane\u200b@gmail.com now", "Mail <EMAIL> now"),
        ("Mail jane@gm\u00adail.com now", "Mail <EMAIL> now"),
        ("+44 20\u2060 7946 0958", "<PHONE>"),
        ("Card 4111\ufeff 1111 1111 1111.", "Card <CARD>."),
        # a control character, and a bidi override
        ("Server 8.8\x07.8.8 up", "Server <IP> up"),
        ("Pay GB82\u202eWEST12345698765432", "Pay <IBAN>"),
        # hidden characters outside a span are left for text hygiene to count and remove
        ("\u200bjane@gmail.com\u200b", "\u200b<EMAIL>\u200b"),
    ],
)
def test_hidden_characters_do_not_hide_pii(text: str, expected: str) -> None:
    assert redact(text)[0] == expected


def test_text_hygiene_cannot_bring_redacted_pii_back(tmp_path: Path) -> None:
    # ingest redacts through the hidden character; the clean stage's hygiene then removes the rest
    path = _jsonl(tmp_path, [{"instruction": "Who is jane\u200b@gmail.com?", "output": "A \u200b friend."}])
    rows = normalize_file(path, max_chars=8000, options=REDACTING)
    result = clean_rows(rows, HYGIENE)
    assert result.kept[0]["messages"][0]["content"] == "Who is <EMAIL>?"
    assert not LEAKS.search(str(result.kept) + str(rows))


def test_redact_row_covers_every_text_column_and_keeps_json_valid() -> None:
    call = json.dumps(
        [{"type": "function", "function": {"name": "mail", "arguments": {"to": "jane@gmail.com"}}}]
    )
    row = {
        "id": "jane@gmail.com",
        "messages": [
            {
                "role": "system",
                "content": "Escalate to +44 20 7946 0958.",
                "weight": None,
                "tool_calls": None,
            },
            {"role": "user", "content": "Mail her", "weight": None, "tool_calls": None},
            {"role": "assistant", "content": "", "weight": None, "tool_calls": call},
        ],
        "tools": json.dumps(
            [{"type": "function", "function": {"name": "mail", "description": "from 8.8.8.8"}}]
        ),
        "raw": '{"card": "4111 1111 1111 1111"}',
        "error": "wrong_type: 'history' item 1 ... GB82WEST12345698765432",
    }
    redacted, counts = redact_row(row, PII_TYPES)
    assert counts == {"email": 2, "phone": 1, "ip": 1, "card": 1, "iban": 1}
    # an id keeps a hash of its original so it stays unique: sha256("jane@gmail.com")[:12]
    assert redacted["id"] == "<EMAIL>~" + hashlib.sha256(b"jane@gmail.com").hexdigest()[:12]
    assert redacted["messages"][0]["content"] == "Escalate to <PHONE>."
    assert json.loads(redacted["messages"][2]["tool_calls"])[0]["function"]["arguments"] == {"to": "<EMAIL>"}
    assert "from <IP>" in json.loads(redacted["tools"])[0]["function"]["description"]
    assert json.loads(redacted["raw"]) == {"card": "<CARD>"}
    assert redacted["error"].endswith("... <IBAN>")
    assert row["raw"] == '{"card": "4111 1111 1111 1111"}'  # a new dict, the input is untouched


def test_ingest_redacts_every_row_kept_or_broken_and_keeps_ids_stable(tmp_path: Path) -> None:
    rows_in: list[Any] = [
        {
            "instruction": "My mail is jane.doe@gmail.com",
            "output": "Call +44 20 7946 0958.",
            "system": "8.8.8.8",
        },
        {"instruction": "Card 4111 1111 1111 1111 ok?", "output": "no"},
        {
            "instruction": "My mail is jane.doe@gmail.com",
            "output": "Call +44 20 7946 0958.",
            "system": "8.8.8.8",
        },
        {"instruction": ["jane.doe@gmail.com"], "output": "wrong type"},
    ]
    path = _jsonl(tmp_path, rows_in)
    with path.open("a") as handle:
        handle.write('{"mail": "x@gmail.com"\n')  # malformed: only raw tells what it was
    plain = normalize_file(path, max_chars=8000)
    rows = normalize_file(path, max_chars=8000, options=REDACTING)
    assert not LEAKS.search(str(rows))
    assert LEAKS.search(str(plain))
    # ids are derived from the original text, so redaction changes none; the copy still gets "-2"
    assert [row["id"] for row in rows] == [row["id"] for row in plain]
    assert rows[2]["id"] == rows[0]["id"] + "-2"
    assert [m["content"] for m in rows[0]["messages"]] == ["<IP>", "My mail is <EMAIL>", "Call <PHONE>."]
    assert rows[4]["raw"] == '{"mail": "<EMAIL>"'
    assert rows[3]["error"].startswith("wrong_type")


def test_unknown_pii_type_names_the_setting() -> None:
    for types in (["email", "phone", "ssn"], ["Email"]):
        with pytest.raises(
            InputError, match=re.escape("data.pii_types may list email, phone, card, iban, ip")
        ):
            IngestOptions(pii_types=types)
    with pytest.raises(InputError, match=r"data\.pii_redaction must be true or false"):
        IngestOptions(pii_redaction="yes")  # type: ignore[arg-type]
    assert IngestOptions(pii_types=["email", "ip"]).pii_types == ("email", "ip")


def test_raw_examples_is_redacted_on_disk_and_counts_by_type(tmp_path: Path) -> None:
    path = _jsonl(
        tmp_path,
        [
            {"instruction": "Write jane@gmail.com and bob@gmail.com", "output": "Done, jane@gmail.com."},
            {"instruction": "Server?", "output": "8.8.8.8"},
        ],
    )
    result = materialize_raw(tmp_path, path)
    assert result.success
    [event] = result.get_asset_materialization_events()
    table = event.materialization.metadata["pii_redacted"]
    assert isinstance(table, dg.MarkdownMetadataValue)
    # three addresses, each in a turn and in the original text
    assert "| email | 6 | 1 |" in table.value and "| ip | 2 | 1 |" in table.value
    assert "| card | 0 | 0 |" in table.value
    written = pq.read_table(tmp_path / "data/raw_examples.parquet").to_pylist()
    assert len(written) == 2 and not LEAKS.search(str(written))


def _jsonl(tmp_path: Path, rows: list[Any]) -> Path:
    path = tmp_path / "rows.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def test_escaped_characters_in_a_jsonl_line_do_not_hide_pii_in_raw(tmp_path: Path) -> None:
    # json.dumps' default writes non-ASCII as \uXXXX: "T\u00e9l\u00e9phone: 030 1234567" in the line
    value = {"instruction": "Téléphone: 030 1234567, mail jane\u200b@gmail.com", "output": "Merci."}
    path = tmp_path / "ascii.jsonl"
    path.write_text(json.dumps(value) + "\n", encoding="utf-8")
    assert "\\u00e9" in path.read_text(encoding="utf-8")
    [row] = normalize_file(path, max_chars=8000, options=REDACTING)
    assert row["messages"][0]["content"] == "Téléphone: <PHONE>, mail <EMAIL>"
    assert json.loads(row["raw"])["instruction"] == "Téléphone: <PHONE>, mail <EMAIL>"
    # without redaction the line is kept as written
    [plain] = normalize_file(path, max_chars=8000)
    assert plain["raw"] == path.read_text(encoding="utf-8").strip()


def test_every_text_column_is_redacted_and_redacted_ids_stay_unique(tmp_path: Path) -> None:
    rows_in = [
        {"id": "qbad4@gmail.com", "category": "from kim@gmail.com", "instruction": "Q", "output": "A"},
        {"id": "qbad5@gmail.com", "source": "lee@gmail.com", "group_id": "g-lee@gmail.com"},
        {"id": "plain-3", "instruction": "Q3", "output": "A3", "group_id": "g-lee@gmail.com"},
    ]
    rows_in[1].update(instruction="Q2", output="A2")
    rows = normalize_file(_jsonl(tmp_path, rows_in), max_chars=8000, options=REDACTING)
    assert not LEAKS.search(str(rows))
    digest = {
        text: hashlib.sha256(text.encode()).hexdigest()[:12]
        for text in ("qbad4@gmail.com", "qbad5@gmail.com", "g-lee@gmail.com")
    }
    assert [row["id"] for row in rows] == [
        f"<EMAIL>~{digest['qbad4@gmail.com']}",
        f"<EMAIL>~{digest['qbad5@gmail.com']}",
        "plain-3",
    ]
    assert rows[0]["category"] == "from <EMAIL>" and rows[1]["source"] == "<EMAIL>"
    # the same group id maps to the same redacted value, so the group holds together
    assert rows[1]["group_id"] == rows[2]["group_id"] == f"<EMAIL>~{digest['g-lee@gmail.com']}"
    assert all(row["error"] is None for row in rows)
