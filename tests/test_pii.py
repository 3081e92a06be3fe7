"""PII redaction in the clean stage: what becomes a placeholder, what never does, and where it applies
(kept rows, rejected rows and their raw input text)."""

from __future__ import annotations

import dataclasses
import re

import pytest

from assets.clean.asset import pii_table
from assets.clean.pii import PII_TYPES, redact, redact_rejected
from assets.clean.pipeline import CleanSettings, clean_rows, default_steps
from tests.test_hygiene import SETTINGS, make_row

REDACTING = dataclasses.replace(SETTINGS, pii_redaction=True)


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


def test_clean_rows_redacts_kept_and_rejected_rows_and_raw_text() -> None:
    rows = [
        make_row(
            "kept",
            "My e-mail is jane.doe@gmail.com, what should I write?",
            "Write back to jane.doe@gmail.com or call +44 20 7946 0958.",
            line=1,
            raw='{"q": "My e-mail is jane.doe@gmail.com"}',
        ),
        # rejected by validation (before redaction) and by exact dedup (after it)
        make_row("short", "Card 4111 1111 1111 1111 ok?", "y", line=2, raw='{"card": "4111 1111 1111 1111"}'),
        make_row(
            "copy",
            "My e-mail is jane.doe@gmail.com, what should I write?",
            "Write back to jane.doe@gmail.com or call +44 20 7946 0958.",
            line=3,
            raw='{"q": "My e-mail is jane.doe@gmail.com"}',
        ),
        # an ingest error: only its raw text tells what it was
        make_row(
            "broken",
            "",
            "",
            line=4,
            messages=None,
            error="malformed_json: line 4",
            raw='{"mail": "x@gmail.com"',
        ),
    ]
    result = clean_rows(rows, REDACTING)
    assert [row["messages"] for row in result.kept] == [
        [
            {"role": "user", "content": "My e-mail is <EMAIL>, what should I write?"},
            {"role": "assistant", "content": "Write back to <EMAIL> or call <PHONE>."},
        ]
    ]
    rejected = {row["id"]: row for row in result.rejected}
    assert (rejected["short"]["reason"], rejected["copy"]["reason"]) == ("short_response", "duplicate_exact")
    assert rejected["short"]["messages"][0]["content"] == "Card <CARD> ok?"
    assert rejected["short"]["raw"] == '{"card": "<CARD>"}'
    assert rejected["copy"]["raw"] == '{"q": "My e-mail is <EMAIL>"}'
    assert rejected["broken"]["raw"] == '{"mail": "<EMAIL>"'
    texts = [str(value) for row in result.rejected for value in row.values()] + [str(result.kept)]
    assert not any(re.search(r"gmail|4111|7946", text) for text in texts)
    # the step counts spans in the messages it saw, clean_rows what it found in rejected rows
    step = next(step for step in result.step_counts if step["step"] == "pii_redaction")
    assert step["changes"] == {"changed_rows": 2, "email": 4, "phone": 2}
    assert {k: v for k, v in result.counts.items() if k.startswith("pii_")} == {
        "pii_rejected_card": 2,
        "pii_rejected_email": 2,
    }
    table = pii_table(result.step_counts, result.counts)
    assert "| email | 4 | 2 |" in table and "| card | 0 | 2 |" in table and "| phone | 2 | 0 |" in table


def test_redact_rejected_leaves_ids_and_malformed_messages_alone() -> None:
    row = make_row("jane@gmail.com", "q", "a", raw="jane@gmail.com", messages="not a list")
    [redacted], counts = redact_rejected([row], PII_TYPES)
    assert (redacted["id"], redacted["raw"], redacted["messages"]) == (
        "jane@gmail.com",
        "<EMAIL>",
        "not a list",
    )
    assert counts == {"email": 1}
    assert row["raw"] == "jane@gmail.com"  # new dicts, the input is untouched


def test_redaction_step_only_when_on() -> None:
    assert "pii_redaction" not in [step.name for step in default_steps(SETTINGS)]
    result = clean_rows([make_row("r", "Mail jane@gmail.com?", "Sure, jane@gmail.com.")], SETTINGS)
    assert result.kept[0]["messages"][0]["content"] == "Mail jane@gmail.com?"


@pytest.mark.parametrize("types", [["email", "phone", "ssn"], ["Email"]])
def test_unknown_pii_type_names_the_setting(types: list[str]) -> None:
    with pytest.raises(ValueError, match=re.escape("clean.pii_types may list email, phone, card, iban, ip")):
        dataclasses.replace(REDACTING, pii_types=types)


def test_pii_types_from_a_list_become_a_tuple() -> None:
    settings = dataclasses.replace(REDACTING, pii_types=["email", "ip"])
    assert settings.pii_types == ("email", "ip")
    assert isinstance(settings, CleanSettings)
