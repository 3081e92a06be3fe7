"""CSV: multi-line and quoted cells read exactly, and a quote left open isolated to its own row (case 05)."""

from __future__ import annotations

from pathlib import Path

import pytest

from assets.ingest.csv_rows import csv_records
from assets.ingest.normalize import normalize_file
from assets.ingest.readers import read_records

CASE_05 = Path(__file__).resolve().parents[2] / "shared" / "cases" / "05-csv-quotes-and-newlines"
HEAD = "id,created_at,instruction,input,output\r\n"
C1 = (
    "c1,2025-06-01T08:00:00Z,Write a Python function that doubles a number.,,"
    '"def double(x):\n    return 2 * x\n\nprint(double(4))"\r\n'
)
C2 = (
    "c2,2025-06-02T08:00:00Z,Quote a famous line about comma usage.,,"
    '"She said ""eats, shoots, and leaves"", which is about commas."\r\n'
)
C3 = 'c3,2025-06-03T08:00:00Z,"List three fruits, one per line.",,"apple\r\nbanana\r\ncherry"\r\n'
C4 = 'c4,2025-06-04T08:00:00Z,"Name a colour of the rainbow.,,Orange is one.\r\n'
C5 = "c5,2025-06-05T08:00:00Z,Name a day of the week.,,Monday.\r\n"
C6 = "c6,2025-06-06T08:00:00Z,Name a month with 30 days.,,April.\r\n"
ANSWERS = {
    "c1": "def double(x):\n    return 2 * x\n\nprint(double(4))",
    "c2": 'She said "eats, shoots, and leaves", which is about commas.',
    "c3": "apple\r\nbanana\r\ncherry",
    "c5": "Monday.",
    "c6": "April.",
}


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8", newline="")
    return path


def check_case_05(path: Path) -> None:
    rows = normalize_file(path, max_chars=8000)
    assert len(rows) == 6, "one row per data row: c4 alone is broken"
    good = [row for row in rows if row["error"] is None]
    assert {row["id"]: row["messages"][-1]["content"] for row in good} == ANSWERS
    assert rows[2]["messages"][0]["content"] == "List three fruits, one per line."
    broken = rows[3]
    assert broken["source_line"] == 10, "c4 starts on physical line 10 (c1 spans 2-5, c3 spans 7-9)"
    assert broken["error"].startswith(
        "malformed_csv: line 10: the quote that opens cell 'instruction' is never closed, so the cell ran on "
        "into line 11, which reads as a row of its own; line 10 was set aside as this row"
    ), broken["error"]
    assert broken["raw"] == C4.rstrip("\r\n")
    assert [row["source_line"] for row in rows] == [2, 6, 7, 10, 11, 12]


def test_case_05_multi_line_cells_intact_and_the_unclosed_quote_isolated(tmp_path: Path) -> None:
    check_case_05(write(tmp_path / "input.csv", HEAD + C1 + C2 + C3 + C4 + C5 + C6))


def test_case_05_without_the_broken_row_reads_every_row(tmp_path: Path) -> None:
    rows = normalize_file(write(tmp_path / "input.csv", HEAD + C1 + C2 + C3 + C5 + C6), max_chars=8000)
    assert {row["id"]: row["messages"][-1]["content"] for row in rows} == ANSWERS
    assert all(row["error"] is None for row in rows)


def test_case_05_long_file_after_the_broken_row_is_read(tmp_path: Path) -> None:
    rest = "".join(f"n{i},2025-06-05T08:00:00Z,Repeat the number {i}.,,{i}.\r\n" for i in range(2000))
    rows = normalize_file(write(tmp_path / "input_long.csv", HEAD + C4 + rest), max_chars=8000)
    assert len(rows) == 2001
    assert rows[0]["error"].startswith("malformed_csv: line 2: the quote that opens cell 'instruction'")
    assert all(row["error"] is None for row in rows[1:])
    assert rows[-1]["id"] == "n1999" and rows[-1]["source_line"] == 2002


@pytest.mark.parametrize("name", ["input.csv", "input_no_broken_row.csv"])
def test_case_05_shared_inputs(name: str) -> None:
    path = CASE_05 / name
    if not path.is_file():
        pytest.skip(f"{path} is absent: the shared cases ship only beside the team's checkout")
    if name == "input.csv":
        check_case_05(path)
    else:
        rows = normalize_file(path, max_chars=8000)
        assert {row["id"]: row["messages"][-1]["content"] for row in rows} == ANSWERS


# (name, text, expected records: (line, cells or error prefix))
CSV_CASES: list[tuple[str, str, list[tuple[int, object]]]] = [
    (
        "quote closed by the next row's quoted cell (the cell count gives it away)",
        'a,b,c\n1,"x\n2,"y, q",z\n3,w,v\n',
        [
            (2, "malformed_csv: line 2: the quote that opens cell 'b' is never closed"),
            (3, ["2", "y, q", "z"]),
            (4, ["3", "w", "v"]),
        ],
    ),
    (
        "quote in the last cell would run to the end of the file: the next complete row resumes",
        'a,b,c\n1,2,ok\n3,4,"never closed\n5,6,x\n',
        [
            (2, ["1", "2", "ok"]),
            (3, "malformed_csv: line 3: the quote that opens cell 'c' is never closed, so the cell ran on"),
            (4, ["5", "6", "x"]),
        ],
    ),
    (
        "quote in the last cell on the last line",
        'a,b,c\n1,2,"x',
        [(2, "malformed_csv: line 2: the quote that opens cell 'c' is never closed; it ran to the end")],
    ),
    (
        "quote in the middle swallows rows that realign by chance: the first swallowed complete row resumes",
        'a,b,c,d,e\n1,t,"open,,x\n2,t,"q",,y\n3,t,z,,w\n',
        [
            (2, "malformed_csv: line 2: the quote that opens cell 'c' is never closed"),
            (3, ["2", "t", "q", "", "y"]),
            (4, ["3", "t", "z", "", "w"]),
        ],
    ),
    (
        "a legitimate multi-line last cell holding CSV text is not split",
        'a,b,c\n1,2,"x,y,z\nu,v,w"\n3,4,5\n',
        [(2, ["1", "2", "x,y,z\nu,v,w"]), (4, ["3", "4", "5"])],
    ),
    (
        "a legitimate multi-line middle cell",
        'a,b,c\n1,"two\nlines",3\n4,5,6\n',
        [(2, ["1", "two\nlines", "3"]), (4, ["4", "5", "6"])],
    ),
    (
        "a quote opened on a record's second line: the record ends at that line",
        'a,b,c,d\n1,"x\ny",2,"open\n3,4,5,6\n',
        [
            (2, "malformed_csv: line 3: the quote that opens cell 'd' is never closed, so the cell ran on"),
            (4, ["3", "4", "5", "6"]),
        ],
    ),
    (
        "a sound multi-line row before an unrelated short row is kept whole",
        'a,b,c\n1,"two\nlines",3\n4,5\n6,7,8\n',
        [(2, ["1", "two\nlines", "3"]), (4, ["4", "5"]), (5, ["6", "7", "8"])],
    ),
    (
        "an unclosed quote before rows with multi-line cells costs only its own line",
        'a,b,c\n1,"open,x\n2,"y\nz",w\n3,"p\nq",r\n',
        [
            (2, "malformed_csv: line 2: the quote that opens cell 'b' is never closed"),
            (3, ["2", "y\nz", "w"]),
            (5, ["3", "p\nq", "r"]),
        ],
    ),
    (
        "blank lines are skipped, line numbers stay physical",
        "a,b\n\n1,2\n,\n3,4",
        [(3, ["1", "2"]), (5, ["3", "4"])],
    ),
]


@pytest.mark.parametrize(("text", "expected"), [c[1:] for c in CSV_CASES], ids=[c[0] for c in CSV_CASES])
def test_csv_records(text: str, expected: list[tuple[int, object]]) -> None:
    _, records = csv_records(text)
    found = [(r.line, r.cells if r.cells is not None else r.error) for r in records]
    assert [line for line, _ in found] == [line for line, _ in expected]
    for (_, got), (_, want) in zip(found, expected, strict=True):
        if isinstance(want, str):
            assert isinstance(got, str) and got.startswith(want), got
        else:
            assert got == want


def test_a_broken_csv_row_reaches_the_rows_as_an_error_with_its_text(tmp_path: Path) -> None:
    path = write(tmp_path / "rows.csv", 'id,instruction,output\na,"open,x\nb,Q,A\n')
    records = read_records(path)
    assert [(r.line, r.value is None) for r in records] == [(2, True), (3, False)]
    assert records[0].raw == 'a,"open,x' and records[0].error.startswith("malformed_csv: line 2:")
    rows = normalize_file(path, max_chars=8000)
    assert [row["error"] is None for row in rows] == [False, True]
    assert rows[0]["error"].split(":", 1)[0] == "malformed_csv"


def test_an_unclosed_quote_next_to_a_multi_line_row_loses_only_its_own_row(tmp_path: Path) -> None:
    # the broken row's quote is "closed" by the next row's opening quote: read as one record it has the
    # header's cell count, and only the record after it comes out wrong; ending it at its own line reads
    # every other row exactly
    text = (
        "id,created_at,instruction,output\n"
        'a1,2025-01-01,"Unclosed quote here,Answer one\n'
        'a2,2025-01-02,"Question two\nspans two lines",Answer two\n'
        'a3,2025-01-03,"Question three, with comma\nand a second line","Answer ""three""\nline two"\n'
        "a4,2025-01-04,Question four,Answer four\n"
    )
    rows = normalize_file(write(tmp_path / "q.csv", text), max_chars=8000)
    assert [(row["id"], row["source_line"], row["error"] is None) for row in rows] == [
        ("a1", 2, False),
        ("a2", 3, True),
        ("a3", 5, True),
        ("a4", 8, True),
    ]
    assert rows[0]["error"].startswith(
        "malformed_csv: line 2: the quote that opens cell 'instruction' is never closed, so the cell ran on "
        "into line 3, which starts a sound row; line 2 was set aside as this row"
    ), rows[0]["error"]
    assert rows[0]["raw"] == 'a1,2025-01-01,"Unclosed quote here,Answer one'
    assert rows[1]["messages"][0]["content"] == "Question two\nspans two lines"
    assert rows[2]["messages"][0]["content"] == "Question three, with comma\nand a second line"
    assert rows[2]["messages"][1]["content"] == 'Answer "three"\nline two'


def test_an_unclosed_quote_whose_parse_keeps_the_cell_count_is_still_isolated() -> None:
    # "cbad" read as one record with the next line has 4 cells (a garbled instruction); the record after
    # it then has 2: ending cbad at its line gives only well-formed rows
    row = 'c{0},2025-05-0{0},"Question {0}, with comma\nline two {0}","Answer {0}\nline two"\n'
    text = "id,created_at,instruction,output\n" + row.format(1)
    text += 'cbad,2025-05-20,"This quote never closes,Answer bad\n' + row.format(2) + row.format(3)
    _, records = csv_records(text)
    assert [(r.line, r.cells[0] if r.cells else None) for r in records] == [
        (2, "c1"),
        (5, None),
        (6, "c2"),
        (9, "c3"),
    ]
    question, answer = "Question 2, with comma\nline two 2", "Answer 2\nline two"
    assert records[2].cells == ["c2", "2025-05-02", question, answer]


def test_a_row_with_the_wrong_cell_count_keeps_its_id(tmp_path: Path) -> None:
    text = 'id,instruction,output\nr1,Q,A,extra\n"r2,Q,A\nr3,Q,A\n'
    rows = normalize_file(write(tmp_path / "ids.csv", text), max_chars=8000)
    assert rows[0]["id"] == "r1" and rows[0]["error"] == "malformed_csv: row has 4 cells, header has 3"
    # a quoted id cell may be the broken one: the id is derived from the text instead
    assert rows[1]["id"].startswith("row-") and rows[1]["error"].startswith("malformed_csv: line 3")
    assert rows[2]["id"] == "r3" and rows[2]["error"] is None
