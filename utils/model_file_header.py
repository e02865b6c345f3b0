"""A safetensors file's header read as runtime/safetensors.c reads it, so that the two accept the same files.

The file is an 8-byte little-endian header size, a JSON header, then the tensors' bytes. The header is the small
subset of JSON the format uses, read strictly: UTF-8, one object whose entries are tensors ({"dtype", "shape",
"data_offsets"}, nothing else) and "__metadata__" (strings to strings); no duplicate key anywhere, no number other
than the sizes and offsets (whole, non-negative, below 2^64), no string holding U+0000 or a lone surrogate.
tests/test_model_file_fuzz.py runs thousands of mutated files through both readers and checks they agree.
"""
from __future__ import annotations

import json
from dataclasses import dataclass

MAX_HEADER_SIZE = 100_000_000  # runtime/safetensors.h's ST_MAX_HEADER_SIZE, the safetensors format's own limit
MAX_ENTRIES = 10_000  # ST_MAX_ENTRIES: of tensors, and of metadata entries
MAX_DIMS = 8  # ST_MAX_DIMS
_UINT64_MAX = 2**64 - 1
_TENSOR_FIELDS = {"dtype", "shape", "data_offsets"}


@dataclass(frozen=True)
class TensorEntry:
    """A tensor's dtype, shape and where its bytes lie in the file (checked to lie inside it)."""

    dtype: str
    shape: tuple[int, ...]
    start: int
    nbytes: int


@dataclass(frozen=True)
class Header:
    tensors: dict[str, TensorEntry]
    metadata: dict[str, str]


def read_header(raw: bytes) -> Header:
    """Return the header of the safetensors file `raw`, or raise ValueError with the reason (one line)."""
    if len(raw) < 8:
        raise ValueError(f"file too short ({len(raw)} bytes) to be safetensors")
    size = int.from_bytes(raw[:8], "little")
    if size > MAX_HEADER_SIZE:
        raise ValueError(f"header of {size} bytes is over the limit of {MAX_HEADER_SIZE}: not a model file")
    if size > len(raw) - 8:
        raise ValueError(f"header of {size} bytes is longer than the file: truncated or not safetensors")
    try:
        text = raw[8:8 + size].decode("utf-8")
    except UnicodeDecodeError as error:
        raise ValueError(f"malformed header: not UTF-8 (at byte {error.start})") from None
    try:
        parsed = json.loads(text, object_pairs_hook=_object, parse_int=_size, parse_float=_not_a_size,
                            parse_constant=_not_a_size)
    except json.JSONDecodeError as error:
        if error.msg == "Extra data":
            raise ValueError("malformed header: text after its closing '}'") from None
        raise ValueError(f"malformed header: {error.msg} (at character {error.pos})") from None
    except RecursionError:
        raise ValueError("malformed header: nested too deeply") from None
    return _entries(parsed, len(raw) - 8 - size, 8 + size)


def _plain(text: str) -> str:
    """Refuse what the C reader cannot hold in a C string: U+0000, and lone surrogate halves."""
    if "\0" in text:
        raise ValueError("malformed header: a bad \\u escape (malformed, a lone surrogate or \\u0000)")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("malformed header: a bad \\u escape (malformed, a lone surrogate or \\u0000)") from None
    return text


def _object(pairs: list[tuple[str, object]]) -> dict[str, object]:
    result = {}
    for key, value in pairs:
        if _plain(key) in result:
            raise ValueError(f"malformed header: the key '{key}' is given twice")
        result[key] = value
    return result


def _size(text: str) -> int:
    if text.startswith("-"):
        raise ValueError("malformed header: expected a size")
    if len(text) > 20 or int(text) > _UINT64_MAX:
        raise ValueError("malformed header: a size overflows 64 bits")
    return int(text)


def _not_a_size(text: str) -> None:
    raise ValueError(f"malformed header: {text[:20]} where only whole sizes may stand")


def _entries(parsed: object, data_size: int, data_start: int) -> Header:
    if not isinstance(parsed, dict):
        raise ValueError("malformed header: expected '{'")
    tensors, metadata = {}, {}
    for key, value in parsed.items():
        if key == "__metadata__":
            metadata = _metadata(value)
        elif len(tensors) >= MAX_ENTRIES:
            raise ValueError(f"malformed header: more than {MAX_ENTRIES} tensors")
        else:
            tensors[key] = _tensor(key, value, data_size, data_start)
    return Header(tensors, metadata)


def _metadata(value: object) -> dict[str, str]:
    if not isinstance(value, dict):
        raise ValueError("malformed header: expected '{' for __metadata__")
    if len(value) > MAX_ENTRIES:
        raise ValueError(f"malformed header: more than {MAX_ENTRIES} metadata entries")
    for key, text in value.items():
        if not isinstance(text, str):
            raise ValueError(f"malformed header: metadata '{key}' is not a string")
        _plain(text)
    return value


def _sizes(name: str, field: str, value: object, most: int) -> tuple[int, ...]:
    if not isinstance(value, list) or any(type(v) is not int for v in value):
        raise ValueError(f"malformed header: tensor '{name}' has a '{field}' that is not a list of sizes")
    if len(value) > most:
        raise ValueError(f"malformed header: more than {most} numbers in a list")
    return tuple(value)


def _tensor(name: str, value: object, data_size: int, data_start: int) -> TensorEntry:
    if not isinstance(value, dict):
        raise ValueError(f"malformed header: expected '{{' for tensor '{name}'")
    unknown = sorted(set(value) - _TENSOR_FIELDS)
    if unknown:
        raise ValueError(f"malformed header: tensor '{name}' has an unknown field '{unknown[0]}'")
    if set(value) != _TENSOR_FIELDS or len(_sizes(name, "data_offsets", value["data_offsets"], 2)) != 2:
        raise ValueError(f"tensor '{name}' lacks its dtype, shape or data_offsets")
    if not isinstance(value["dtype"], str):
        raise ValueError(f"malformed header: tensor '{name}' has a dtype that is not a string")
    shape = _sizes(name, "shape", value["shape"], MAX_DIMS)
    start, end = value["data_offsets"]
    if start > end or end > data_size:
        raise ValueError(f"tensor '{name}' lies outside the file (bytes {start}..{end} of {data_size}): the file is "
                         "truncated")
    return TensorEntry(_plain(value["dtype"]), shape, data_start + start, end - start)
