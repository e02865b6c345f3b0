"""Seeded mutations of a valid model file, for the fuzz test of both loaders (tests/test_model_file_fuzz.py).

Each mutant is the file with one to three of: a flipped byte (mostly in the header), a truncation, a new header size
field, an edited metadata value (hostile numbers and strings), a removed or added metadata key, an edited tensor
entry, or a character inserted into or deleted from the header's JSON text.
"""
from __future__ import annotations

import json
import struct

import numpy as np

HOSTILE_VALUES = ["", "0", "-1", "1", "2", "16", "17", "256", "257", "8192", "8193", "65536", "1000000", "1e39",
                  "-1e39", "nan", "inf", "-inf", "1e309", "3.5e38", "99999999999999999999", "-9223372036854775809",
                  " 16", "+16", "1_6", "16.0", "0x10", "\u0661", "\u00e9" * 40, "x" * 70, "midi", "hz", "\n", "1e-50",
                  "-0", "007", "0" * 30 + "16", ".5", "5.", "1e", "rnncontrol", "\\u0000"]
SIZE_VALUES = [0, 1, 2, 3, 4, 15, 16, 17, 48, 256, 2**31, 2**32 + 16, 2**63, 2**64 - 1]
JSON_PIECES = ['"', "{", "}", "[", "]", ":", ",", "\\", "\\u", "\\ud800", "\\u0000", " ", "0", "1", "-", ".", "e",
               "null", "true", "\x00", "\t", "\u00e9", "\U0001F3B5"]


def _split(raw: bytes) -> tuple[dict, bytes]:
    size = struct.unpack("<Q", raw[:8])[0]
    return json.loads(raw[8:8 + size]), raw[8 + size:]


def _join(text: str, data: bytes) -> bytes:
    encoded = text.encode("utf-8", "surrogatepass")
    return struct.pack("<Q", len(encoded)) + encoded + data


def _header_end(raw: bytes) -> int:
    return 8 + min(struct.unpack("<Q", raw[:8])[0], len(raw) - 8) if len(raw) >= 8 else len(raw)


def flip_byte(raw: bytes, rng: np.random.Generator) -> bytes:
    spoiled = bytearray(raw)
    end = _header_end(raw) if rng.random() < 0.85 else len(raw)
    if end:
        at = int(rng.integers(0, end))
        spoiled[at] = int(rng.integers(0, 256)) if rng.random() < 0.5 else spoiled[at] ^ (1 << int(rng.integers(8)))
    return bytes(spoiled)


def truncate(raw: bytes, rng: np.random.Generator) -> bytes:
    return raw[:int(rng.integers(0, len(raw)))]


def header_size_field(raw: bytes, rng: np.random.Generator) -> bytes:
    size = struct.unpack("<Q", raw[:8])[0] if len(raw) >= 8 else 0
    choices = [0, 1, size - 1, size + 1, len(raw) - 8, len(raw) - 7, 100_000_001, 2**63, 2**64 - 1,
               int(rng.integers(0, 2**63))]
    new = int(choices[int(rng.integers(len(choices)))]) % 2**64
    return struct.pack("<Q", new) + raw[8:]


def _edit_header(raw: bytes, rng: np.random.Generator, edit) -> bytes:
    try:
        header, data = _split(raw)
    except (ValueError, struct.error):  # an earlier mutation broke the JSON: edit the bytes instead
        return flip_byte(raw, rng)
    if not isinstance(header, dict) or not isinstance(header.get("__metadata__", {}), dict):
        return flip_byte(raw, rng)
    edit(header, rng)
    return _join(json.dumps(header, ensure_ascii=bool(rng.integers(2))), data)


def _metadata_value(header: dict, rng: np.random.Generator) -> None:
    metadata = header.setdefault("__metadata__", {})
    keys = list(metadata) or ["format"]
    key = keys[int(rng.integers(len(keys)))]
    roll = rng.random()
    if roll < 0.15:
        metadata.pop(key, None)
    elif roll < 0.25:
        metadata[f"parameter.{int(rng.integers(0, 12))}.{['name', 'min', 'max'][int(rng.integers(3))]}"] = "1"
    elif roll < 0.45:
        metadata[key] = str(int(rng.integers(-3, 300)))
    else:
        metadata[key] = HOSTILE_VALUES[int(rng.integers(len(HOSTILE_VALUES)))]


def _tensor_entry(header: dict, rng: np.random.Generator) -> None:
    names = [name for name in header if name != "__metadata__"] or ["extra"]
    name = names[int(rng.integers(len(names)))]
    entry = header.setdefault(name, {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]})
    if not isinstance(entry, dict):
        return
    roll = rng.random()
    if roll < 0.1:
        header.pop(name)
    elif roll < 0.2:
        header[f"extra.{int(rng.integers(100))}"] = dict(entry)
    elif roll < 0.3:
        entry["dtype"] = ["F16", "F64", "I32", "f32", "", 32][int(rng.integers(6))]
    elif roll < 0.4:
        entry[["note", "dtype", "shape"][int(rng.integers(3))]] = "x"
    elif roll < 0.7 and isinstance(entry.get("shape"), list):
        entry["shape"] = [int(SIZE_VALUES[int(rng.integers(len(SIZE_VALUES)))]) for _ in range(int(rng.integers(0, 4)))]
    elif isinstance(entry.get("data_offsets"), list):
        entry["data_offsets"] = [int(SIZE_VALUES[int(rng.integers(len(SIZE_VALUES)))])
                                 for _ in range(int(rng.integers(1, 4)))]


def metadata_value(raw: bytes, rng: np.random.Generator) -> bytes:
    return _edit_header(raw, rng, _metadata_value)


def tensor_entry(raw: bytes, rng: np.random.Generator) -> bytes:
    return _edit_header(raw, rng, _tensor_entry)


def json_text(raw: bytes, rng: np.random.Generator) -> bytes:
    end = _header_end(raw)
    text = raw[8:end].decode("utf-8", "surrogateescape")
    at = int(rng.integers(0, len(text) + 1))
    if rng.random() < 0.4 and text:
        text = text[:at] + text[at + int(rng.integers(1, 4)):]
    else:
        text = text[:at] + JSON_PIECES[int(rng.integers(len(JSON_PIECES)))] + text[at:]
    encoded = text.encode("utf-8", "surrogateescape")
    return struct.pack("<Q", len(encoded)) + encoded + raw[end:]


MUTATIONS = [flip_byte, truncate, header_size_field, metadata_value, metadata_value, tensor_entry, json_text,
             json_text]


def canonical(raw: bytes) -> bytes:
    """Return the model file with its header's keys sorted: safetensors writes its metadata in an order that changes
    from one process to the next, and mutants of one seed must be the same files in every run."""
    header, data = _split(raw)
    return _join(json.dumps(header, sort_keys=True), data)


def mutants(raw: bytes, count: int, seed: int) -> list[bytes]:
    """Return `count` mutants of the model file `raw`, the same for the same seed and file."""
    rng = np.random.default_rng(seed)
    result = []
    for _ in range(count):
        spoiled = raw
        for _ in range(int(rng.integers(1, 4))):
            spoiled = MUTATIONS[int(rng.integers(len(MUTATIONS)))](spoiled, rng)
        result.append(spoiled)
    return result
