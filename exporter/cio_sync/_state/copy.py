"""COPY data in PostgreSQL's text format, made a piece at a time as the driver asks for it."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from itertools import chain
from typing import Any


class _Chunks:
    """COPY data read by psycopg2's copy_expert one piece at a time, each made when it is asked
    for: the writer thread formats the next piece (holding the GIL) while PostgreSQL parses the
    last one (psycopg2 lets go of the GIL while it sends it)."""

    def __init__(self, pieces: Iterator[str]) -> None:
        self.pieces = pieces

    def read(self, size: int = -1) -> str:
        return next(self.pieces, "")


#: rows per piece of a COPY in text format (about 150 KB of ledger rows)
COPY_PIECE_ROWS = 1_000
_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _text_value(value: Any) -> str:
    """One value in COPY's text format: null as \\N, booleans t/f, times ISO, separators and
    backslashes escaped."""
    if value is None:
        return "\\N"
    if isinstance(value, bool):
        return "t" if value else "f"
    if isinstance(value, datetime):
        return value.isoformat(sep=" ")
    return str(value).translate(_ESCAPES)


def _copy_text(rows: list[tuple], constants: tuple, piece: int | None = None) -> Iterator[str]:
    """The rows of a COPY in PostgreSQL's text format, each followed by the constants, in pieces
    of `piece` rows. A piece is made by one `%` over all its values instead of a writer per row
    (about 4x faster than csv, which counts on the writer thread: it holds the GIL the reader
    and the encoder need). A piece with a null, a boolean (written t/f) or a value holding a
    tab, a line break or a backslash is made again value by value, escaped. The check counts
    the separators in the result, so a value that brings its own is found whatever its type."""
    if not rows:
        return
    piece = piece or COPY_PIECE_ROWS
    width = len(rows[0])
    tail = "\t".join(map(_text_value, constants))
    line = "\t".join(["%s"] * width) + ("\t" + tail.replace("%", "%%") if constants else "") + "\n"
    tabs = width - 1 + len(constants)
    end = ("\t" + tail if constants else "") + "\n"
    for start in range(0, len(rows), piece):
        chunk = rows[start:start + piece]
        values = tuple(chain.from_iterable(chunk))
        if len(values) == width * len(chunk) and None not in values and bool not in set(map(type, values)):
            text = (line * len(chunk)) % values
            if (text.count("\t") == len(chunk) * tabs and text.count("\n") == len(chunk)
                    and "\\" not in text and "\r" not in text):
                yield text
                continue
        yield "".join("\t".join(map(_text_value, row)) + end for row in chunk)
