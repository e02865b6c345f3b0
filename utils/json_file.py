"""JSON and CSV files from outside (config.json, labels tables, the encoded cache's index), read within limits.

Python's readers take anything: a FIFO blocks them forever, 100,000 nested brackets raise RecursionError, a
401-digit integer an OverflowError later, a duplicated key keeps its last value without a word, a long CSV field
raises _csv.Error. Every reader of the project goes through here, so each of these is one ValueError that names
the file and says what is wrong.
"""
from __future__ import annotations

import csv
import io
import json
import os
import stat
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

# Far above any table or index the project writes (NSynth's largest examples.json is about 150 MB), and small
# enough that parsing one never exhausts a machine's memory.
MAX_FILE_BYTES = 512 * 1024 * 1024
# Every whole number the project stores (sizes, seeds, file times in nanoseconds) fits in 64 bits.
MAX_INTEGER = 2 ** 63 - 1
# A CSV row longer than this holds no file name and numbers (Python's csv stops at a 131,072-character field with
# its own error).
MAX_CSV_FIELD = 65_536


def read_regular_bytes(path: str | Path, max_bytes: int = MAX_FILE_BYTES) -> bytes:
    """Return the bytes of the regular file at `path`, refusing (ValueError) a FIFO, a device or a file too large.

    Opened without blocking, so a FIFO is refused instead of waiting forever for a writer.
    """
    path = Path(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except (FileNotFoundError, NotADirectoryError):
        raise FileNotFoundError(f"{path} does not exist") from None
    except OSError as error:
        raise ValueError(f"cannot open {path} ({error.strerror})") from None
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise ValueError(f"{path} is not a regular file; give the path of a file")
        if info.st_size > max_bytes:
            raise ValueError(f"{path} holds {info.st_size:,} bytes, more than the {max_bytes:,} this reads")
        return handle.read(max_bytes + 1)


def read_json(path: str | Path, max_bytes: int = MAX_FILE_BYTES) -> Any:
    """Return the JSON value in the file at `path`; ValueError naming the file for anything beyond the limits."""
    return parse_json(read_regular_bytes(path, max_bytes), str(path))


def parse_json(text: bytes | str, source: str) -> Any:
    """Return the JSON value of `text` (UTF-8), refusing deep nesting, huge integers and duplicated keys.

    `source` names where the text came from in every refusal.
    """
    raw = text.encode() if isinstance(text, str) else bytes(text)
    try:
        return json.loads(raw.decode("utf-8"), parse_int=_whole_number, object_pairs_hook=_object)
    except UnicodeDecodeError as error:
        raise ValueError(f"{source} is not UTF-8 text ({error.reason} at byte {error.start})") from None
    except json.JSONDecodeError as error:
        raise ValueError(f"{source} is not valid JSON ({error})") from None
    except _Refused as error:
        raise ValueError(f"{source}: {error}") from None
    except RecursionError:
        raise ValueError(f"{source} nests its brackets deeper than this reader follows (about "
                         f"{sys.getrecursionlimit():,} levels); nothing RNNControl writes nests more than a few"
                         ) from None


class _Refused(ValueError):
    """A value json.loads read that the limits refuse (it comes back out of json.loads unchanged)."""


def _whole_number(text: str) -> int:
    # Decided on the digits first: Python refuses to read more than 4,300 of them, with another error.
    if len(text) > len(str(MAX_INTEGER)) + 1 or abs(int(text)) > MAX_INTEGER:
        raise _Refused(f"the whole number {text[:20]}{'...' if len(text) > 20 else ''} ({len(text)} digits) is "
                       "beyond 64 bits")
    return int(text)


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    mapping = dict(pairs)
    if len(mapping) != len(pairs):
        seen = set()
        twice = next(key for key, _ in pairs if key in seen or seen.add(key))
        raise _Refused(f"the key {twice!r} appears twice in one object; keep one")
    return mapping


@contextmanager
def csv_rows(path: str | Path, max_bytes: int = MAX_FILE_BYTES) -> Iterator[csv.DictReader]:
    """Yield a csv.DictReader over the UTF-8 table at `path`, its errors turned into ValueErrors naming the file.

    Each names the line too: text that is not UTF-8 (a BOM is allowed), a row over MAX_CSV_FIELD characters, a
    broken quote.
    """
    raw = read_regular_bytes(path, max_bytes)
    try:
        text = raw.decode("utf-8-sig")  # utf-8-sig: spreadsheets often write a BOM
    except UnicodeDecodeError as error:
        line = raw[:error.start].count(b"\n") + 1
        raise ValueError(f"{path} line {line} is not UTF-8 text ({error.reason}); save the table as UTF-8") from None
    reader = csv.DictReader(_bounded_lines(io.StringIO(text, newline=""), path))
    try:
        yield reader
    except csv.Error as error:
        # line_num counts the rows read whole, so the row that failed starts on the next line.
        raise ValueError(f"{path}, the row starting on line {reader.line_num + 1}: {error}") from None


def _bounded_lines(lines: Iterator[str], path: str | Path) -> Iterator[str]:
    """Yield the lines, refusing one longer than any field may be (the csv module's own limit is process-wide)."""
    for number, line in enumerate(lines, start=1):
        if len(line) > MAX_CSV_FIELD:
            raise ValueError(f"{path} line {number} holds {len(line):,} characters, more than the {MAX_CSV_FIELD:,} "
                             "a row of a table may")
        yield line
