"""CSV rows, with multi-line quoted cells, and a quote left open isolated to its own row.

Quoted cells may hold commas, doubled quotes and line breaks (LF or CRLF), read exactly. A quote that is
opened and never closed would otherwise swallow the rows after it into one cell. For a record whose
quoted cell spans lines, two readings are compared first: the record as one, and the record ended at the
line its quote opens on (that quote taken as never closed) with reading going on from the next line. Both
are followed until they end a record on the same line; the cut reading wins when the whole reading has a
record with another cell count than the header and the cut one has no more such records, counting its
set-aside line as one (so a quote "closed" by the next row's opening quote, which may even give the right
cell count, costs only its own row). Otherwise a record is taken as broken when

- it has another number of cells than the header, or
- its quote is still open at the end of the file, or
- its first line, cut at the line end, has fewer cells than the header and one of the lines it swallowed
  reads on its own as a complete row (as many cells as the header, no quote left open).

The broken record then ends before the first swallowed line that reads as a complete row: it becomes one
``malformed_csv`` record naming the line and column of the unclosed quote, and reading goes on from that
line. A legitimate multi-line cell whose lines look like complete rows (a cell holding CSV text with as
many fields as the header, opened before the last column) is misread by the last rule: write such cells
as JSONL instead. Framework-free.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

# States of the quote scanner (the default dialect: comma, double quote, "" for a quote inside quotes).
_FIELD_START, _UNQUOTED, _QUOTED, _QUOTE_IN_QUOTED = range(4)


@dataclass(frozen=True)
class CsvRecord:
    """One record of a CSV text: the 1-based physical line it starts on, its original text, and its cells,
    or None with ``error`` when it is malformed."""

    line: int
    text: str
    cells: list[str] | None
    error: str | None = None


class _Lines:
    """The physical lines of a text, fed to :func:`csv.reader` one by one, with a position one can move
    back: the reader keeps no state between records, so reading may go on from any line still held.
    Lines are read from ``source`` as needed and held from the start of the current record on
    (:meth:`forget`), so memory is bounded by the longest record, not by the file."""

    def __init__(self, source: Iterable[str]) -> None:
        self.source = iter(source)
        self.held: list[str] = []
        self.first = 0  # the line number (0-based) of held[0]
        self.position = 0

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        if self.position - self.first >= len(self.held) and not self._pull():
            raise StopIteration
        self.position += 1
        return self.held[self.position - 1 - self.first]

    def _pull(self) -> bool:
        line = next(self.source, None)
        if line is None:
            return False
        self.held.append(line)
        return True

    def span(self, start: int, end: int) -> list[str]:
        """Lines ``start`` to ``end`` (0-based, end excluded), which must still be held."""
        return self.held[start - self.first : end - self.first]

    def at_end(self) -> bool:
        """Whether no line follows the current position."""
        return self.position - self.first >= len(self.held) and not self._pull()

    def forget(self) -> None:
        """Let go of the lines before the current position."""
        del self.held[: self.position - self.first]
        self.first = self.position


def physical_lines(text: str) -> list[str]:
    """The lines of ``text`` with their line ends; only LF ends a line (a CR before it belongs to it)."""
    lines = text.split("\n")
    result = [line + "\n" for line in lines[:-1]]
    if lines[-1]:
        result.append(lines[-1])
    return result


def csv_records(text: str) -> tuple[list[str] | None, list[CsvRecord]]:
    """The header and every non-blank record of ``text`` in order (see :class:`CsvReader`)."""
    reader = CsvReader(physical_lines(text))
    records = list(reader)
    return reader.header, records


class CsvReader:
    """The records of a CSV text given as its physical lines (each with its line end, as
    :func:`physical_lines` gives them or a file read in binary mode yields them), read lazily; ``header``
    is set once the first non-blank record is read. Iterating raises :class:`csv.Error` only for what no
    isolation can fix (a cell over the csv module's field size limit)."""

    def __init__(self, lines: Iterable[str]) -> None:
        self.lines = lines
        self.header: list[str] | None = None

    def __iter__(self) -> Iterator[CsvRecord]:
        source = _Lines(self.lines)
        reader = csv.reader(source)
        while True:
            source.forget()
            start = source.position
            try:
                cells = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                raise csv.Error(f"line {start + 1}: {exc}") from exc
            end = source.position
            if not any(cell.strip() for cell in cells):
                continue
            if self.header is None:
                self.header = cells
                continue
            span = source.span(start, end)
            # a record on one line can hold an open quote only at the end of the file
            if len(span) > 1 or (_scan(span)[0] == _QUOTED and source.at_end()):
                width = len(self.header)
                split = _open_quote(span)[0] + 1
                broken = None
                if split < len(span) and _reading_on_is_better(source, start, split, width):
                    broken = _broken_record(span, cells, split, self.header, start)
                if broken is None:
                    broken = _isolate_open_quote(span, cells, width, self.header, start)
                source.position = end
                if broken is not None:
                    record, resume = broken
                    yield record
                    source.position = start + resume
                    continue
            yield CsvRecord(start + 1, _strip_end("".join(span)), cells)


# How many records each reading may take before the two must agree on a record boundary; past it the
# counts of bad records seen so far decide. Bounds the lines held (and the work) per multi-line record.
_LOOKAHEAD_RECORDS = 200


def _reading_on_is_better(source: _Lines, start: int, split: int, width: int) -> bool:
    """Whether ending a multi-line record at its opening quote's line (``split`` lines after ``start``,
    taking that quote as never closed) and reading on from the next line gives fewer (or as few) records
    with a cell count other than ``width`` than reading the record as one, with at least one such record in
    the latter. Both readings are followed until they end a record on the same line, where they agree from
    there on. The cut reading counts its set-aside record as one bad record; a reading with no bad record
    at all is always kept (a sound multi-line cell is never split)."""
    as_one = _record_ends(source, start, width)
    cut = _record_ends(source, start + split, width)
    at_one, at_cut, bad_one, bad_cut = start, start + split, 0, 1
    for _ in range(2 * _LOOKAHEAD_RECORDS):
        if at_one == at_cut:
            break
        if at_one < at_cut:
            at_one, bad = next(as_one, (_END, False))
            bad_one += bad
        else:
            at_cut, bad = next(cut, (_END, False))
            bad_cut += bad
    return bad_one > 0 and bad_cut <= bad_one


_END = 1 << 62  # the position a reading reports once it has no record left


def _record_ends(source: _Lines, position: int, width: int) -> Iterator[tuple[int, bool]]:
    """(line after the record, whether its cell count is not ``width`` or its quote runs to the end of
    the file) for each non-blank record read from ``position`` on, moving ``source.position``."""
    reader = csv.reader(source)
    while True:
        source.position = position
        try:
            cells = next(reader)
        except (StopIteration, csv.Error):
            return
        start, position = position, source.position
        if not any(cell.strip() for cell in cells):
            continue
        open_at_end = source.at_end() and _scan(source.span(start, position))[0] == _QUOTED
        yield position, len(cells) != width or open_at_end


def _isolate_open_quote(
    span: list[str], cells: list[str], width: int, header: list[str], start: int
) -> tuple[CsvRecord, int] | None:
    """The broken record and the offset in ``span`` to read on from, when an unclosed quote made
    ``span`` one record; None when the multi-line record looks sound."""
    resume = next((i for i in range(1, len(span)) if _complete_row(span[i], width)), None)
    open_at_end = _scan(span)[0] == _QUOTED
    suspect = len(cells) != width or open_at_end or (resume is not None and _cells_on_line(span[0]) < width)
    if not suspect:
        return None
    return _broken_record(span, cells, resume, header, start)


def _broken_record(
    span: list[str], cells: list[str], resume: int | None, header: list[str], start: int
) -> tuple[CsvRecord, int]:
    """The ``malformed_csv`` record for the first ``resume`` lines of ``span`` (all when None) and the
    offset in ``span`` to read on from."""
    width = len(header)
    open_at_end = _scan(span)[0] == _QUOTED
    taken = span[:resume] if resume is not None else span
    line_offset, field = _open_quote(taken)
    column = f"'{header[field]}'" if field < len(header) else f"number {field + 1}"
    quote_line = start + line_offset + 1
    if resume is not None:
        kept = f"line {start + 1} was" if resume == 1 else f"lines {start + 1}-{start + resume} were"
        # the line is a whole row, or (the two readings compared) starts rows that read correctly
        reads = "reads as a row of its own" if _complete_row(span[resume], width) else "starts a sound row"
        detail = (
            f"line {quote_line}: the quote that opens cell {column} is never closed, so the cell ran on into "
            f"line {start + resume + 1}, which {reads}; {kept} set aside as this row and "
            f"reading went on from line {start + resume + 1}"
        )
    elif open_at_end:
        detail = (
            f"line {quote_line}: the quote that opens cell {column} is never closed; it ran to the end of "
            f"the file (line {start + len(span)})"
        )
    else:
        detail = (
            f"line {quote_line}: the quoted cell {column} runs over lines {start + 1}-{start + len(span)} "
            f"and leaves the row with {len(cells)} cells, header has {width}; a quote is probably not closed"
        )
    error = f'malformed_csv: {detail}. Close the quote, or write a quote inside a cell as two ("")'
    return CsvRecord(start + 1, _strip_end("".join(taken)), None, error), resume or len(span)


def _complete_row(line: str, width: int) -> bool:
    """Whether one physical line reads as a whole row: ``width`` cells and no quote left open."""
    state, fields, _ = _scan([line])
    return state != _QUOTED and fields == width and bool(line.strip())


def _cells_on_line(line: str) -> int:
    """How many cells a line starts, counting a quoted cell left open at its end as one."""
    return _scan([line])[1]


def _open_quote(lines: list[str]) -> tuple[int, int]:
    """Where the last quoted cell that runs past a line end of ``lines`` opens: (index in ``lines``,
    field index); the first cell of the first line when none does."""
    return _scan(lines)[2]


def _scan(lines: list[str]) -> tuple[int, int, tuple[int, int]]:
    """The quote state after ``lines`` (the last one without its line end), the number of cells, and
    where the last quoted cell still open at a line end opened (see :func:`_open_quote`)."""
    state, field, opened, crossing = _FIELD_START, 0, (0, 0), (0, 0)
    for index, line in enumerate(lines):
        for char in _strip_end(line):
            state, field, opened = _step(state, field, opened, char, index)
        if state == _QUOTED:
            crossing = opened
        if index < len(lines) - 1:
            # the line end itself: inside quotes it is text of the cell
            for char in line[len(_strip_end(line)) :]:
                state, field, opened = _step(state, field, opened, char, index)
    return state, field + 1, crossing


def _step(
    state: int, field: int, opened: tuple[int, int], char: str, index: int
) -> tuple[int, int, tuple[int, int]]:
    """One character of the csv module's non-strict parse: only the quote state and the cell count."""
    if state == _QUOTED:
        return (_QUOTE_IN_QUOTED if char == '"' else _QUOTED), field, opened
    if state == _QUOTE_IN_QUOTED and char == '"':
        return _QUOTED, field, opened
    if char == ",":
        return _FIELD_START, field + 1, opened
    if char in "\r\n":
        # a line end outside quotes ends the record; only the last line of a span can have one
        return _FIELD_START, field, opened
    if state == _FIELD_START and char == '"':
        return _QUOTED, field, (index, field)
    return _UNQUOTED, field, opened


def _strip_end(text: str) -> str:
    return text[:-2] if text.endswith("\r\n") else text[:-1] if text.endswith("\n") else text
