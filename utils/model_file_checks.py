"""The checks runtime/model_file.c makes of a model file before it builds anything, made here the same way.

Same order, same limits, same syntax for numbers: so `load_model` and the C runtime (and Pd, which uses it) accept
the same files and refuse the others with the same first reason. tests/model_file_cases.py is the table both are
held to; tests/test_model_file_fuzz.py runs thousands of mutated files through both.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np
import torch

from utils.checks import finite_number
from utils.model_file_header import Header

# runtime/model_file.c's read_sizes: each size with its lowest and highest value, in the order it reads them.
SIZE_LIMITS = (("input_size", 1, 1), ("cond_size", 0, 1024), ("hidden_size", 1, 8192), ("num_layers", 1, 256),
               ("numtokens", 2, 65536), ("cond_every_layer", 0, 1), ("encode", 0, 1), ("sample_rate", 1, 1_000_000))
MAX_FORMAT_VERSION_TEXT = 1_000_000  # a format_version above this is not read as a number at all
MAX_HARMONICS = 16
MAX_NAME_BYTES = 63  # runtime/model.h's MAX_NAME, less its terminating NUL
_WHOLE = re.compile(r"-?[0-9]+")  # strtol would also take spaces and '+'; int() also underscores and other digits
_DECIMAL = re.compile(r"[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?")  # as repr() writes floats


@dataclass(frozen=True)
class ModelMetadata:
    """What a model file's metadata says, checked."""

    version: int
    sizes: dict[str, int]  # SIZE_LIMITS' keys
    dropout: float
    harmonics: int  # the periodic reference's K; 0: none
    pitch: int | None  # the index of the parameter the reference follows
    units: str | None  # its units, "midi" or "hz"
    parameters: dict[str, tuple[float, float]]  # name: (min, max), in the network's order


def _text(metadata: dict[str, str], key: str) -> str:
    if key not in metadata:
        raise ValueError(f"metadata '{key}' missing: export the model with export.py")
    return metadata[key]


def _whole_number(metadata: dict[str, str], key: str, low: int, high: int) -> int:
    text = _text(metadata, key)
    digits = text.lstrip("-").lstrip("0") or "0"  # strtol reads any number of leading zeros; int() stops at 4300
    if _WHOLE.fullmatch(text) and len(digits) <= 18:
        value = -int(digits) if text.startswith("-") else int(digits)
        if low <= value <= high:
            return value
    raise ValueError(f"metadata '{key}' is '{text}', not a whole number in [{low}, {high}]")


def _number(metadata: dict[str, str], key: str) -> float:
    """Return a number finite in float32: the runtime holds it as one, where 1e39 would be infinite."""
    text = _text(metadata, key)
    if not _DECIMAL.fullmatch(text) or not math.isfinite(float(text)):
        raise ValueError(f"metadata '{key}' is '{text}', not a finite number")
    return finite_number(f"metadata '{key}'", text)


def _sizes(metadata: dict[str, str], latest_version: int) -> tuple[int, dict[str, int]]:
    if metadata.get("format") != "rnncontrol":
        raise ValueError("not an RNNControl model file (no metadata format=rnncontrol): export one with export.py")
    version = _whole_number(metadata, "format_version", 0, MAX_FORMAT_VERSION_TEXT)
    if not 1 <= version <= latest_version:
        raise ValueError(f"the file has format version {version}; this RNNControl reads versions 1 to "
                         f"{latest_version}")
    return version, {key: _whole_number(metadata, key, low, high) for key, low, high in SIZE_LIMITS}


def _dropout(metadata: dict[str, str]) -> float:
    """Unused when playing, but PyTorch refuses a network built with a dropout outside [0, 1]."""
    dropout = _number(metadata, "dropout")
    if not 0 <= dropout <= 1:
        raise ValueError(f"metadata 'dropout' is '{metadata['dropout']}', not a number in [0, 1]")
    return dropout


def _reference(metadata: dict[str, str], version: int, cond_size: int) -> tuple[int, int | None, str | None]:
    """Return (harmonics, pitch index, units); a version 1 file has no reference."""
    harmonics = 0 if version < 2 else _whole_number(metadata, "reference.harmonics", 0, MAX_HARMONICS)
    if harmonics == 0:
        return 0, None, None
    if 2 * harmonics >= cond_size:
        raise ValueError(f"metadata 'reference.harmonics' is {harmonics}: its {2 * harmonics} channels leave no "
                         f"pitch parameter in cond_size {cond_size}")
    pitch = _whole_number(metadata, "reference.pitch", 0, cond_size - 2 * harmonics - 1)
    units = _text(metadata, "reference.units")
    if units not in ("midi", "hz"):
        raise ValueError(f"metadata 'reference.units' is '{units}', not 'midi' or 'hz'")
    return harmonics, pitch, units


def _parameters(metadata: dict[str, str], count: int) -> dict[str, tuple[float, float]]:
    parameters = {}
    for i in range(count):
        key = f"parameter.{i}.name"
        name = metadata.get(key, "")
        if not name or len(name.encode()) > MAX_NAME_BYTES:
            raise ValueError(f"metadata '{key}' missing or longer than {MAX_NAME_BYTES} bytes")
        if name in parameters:
            raise ValueError(f"metadata '{key}': parameter '{name}' is named twice")
        low, high = _number(metadata, f"parameter.{i}.min"), _number(metadata, f"parameter.{i}.max")
        if np.float32(low) == np.float32(high):  # the runtime holds the range in float32
            raise ValueError(f"parameter '{name}' has an empty range")
        parameters[name] = (low, high)
    return parameters


def check_metadata(metadata: dict[str, str], latest_version: int) -> ModelMetadata:
    """Return the checked metadata, or raise ValueError with the first reason the C runtime would give."""
    version, sizes = _sizes(metadata, latest_version)
    dropout = _dropout(metadata)
    harmonics, pitch, units = _reference(metadata, version, sizes["cond_size"])
    parameters = _parameters(metadata, sizes["cond_size"] - 2 * harmonics)
    return ModelMetadata(version, sizes, dropout, harmonics, pitch, units, parameters)


def expected_shapes(sizes: dict[str, int]) -> dict[str, tuple[int, ...]]:
    """Return every tensor's shape, in the order the runtime checks and reads them (its expected_tensor)."""
    H, C, G = sizes["hidden_size"], sizes["cond_size"], 3 * sizes["hidden_size"]
    shapes = {"input_proj.weight": (H, sizes["input_size"] + C), "input_proj.bias": (H,)}
    for k in range(sizes["num_layers"]):
        inputs = H + C if k and sizes["cond_every_layer"] else H
        shapes.update({f"gru.{k}.weight_ih": (G, inputs), f"gru.{k}.bias_ih": (G,), f"gru.{k}.weight_hh": (G, H),
                       f"gru.{k}.bias_hh": (G,)})
    return {**shapes, "output.weight": (sizes["numtokens"], H), "output.bias": (sizes["numtokens"],)}


def check_tensors(header: Header, shapes: dict[str, tuple[int, ...]]) -> None:
    """Raise ValueError unless the header holds exactly these float32 tensors, each with all its bytes."""
    for name, shape in shapes.items():
        entry = header.tensors.get(name)
        if entry is None:
            raise ValueError(f"tensor '{name}' missing")
        if entry.dtype != "F32":
            raise ValueError(f"tensor '{name}' is {entry.dtype}; the runtime reads F32 (float32)")
        if entry.shape != shape:
            raise ValueError(f"tensor '{name}' has the wrong shape for the sizes in the metadata: want "
                             f"({', '.join(map(str, shape))}), the file has {list(entry.shape)}")
        if entry.nbytes != math.prod(shape) * 4:
            raise ValueError(f"tensor '{name}' holds {entry.nbytes} bytes for {math.prod(shape)} floats")
    if len(header.tensors) != len(shapes):
        raise ValueError(f"the file holds {len(header.tensors)} tensors where its sizes call for {len(shapes)}")


def read_weights(raw: bytes, header: Header, shapes: dict[str, tuple[int, ...]]) -> dict[str, torch.Tensor]:
    """Return the checked tensors' weights; refuse NaN or infinite ones, which make every voice's state non-finite."""
    weights = {}
    for name, shape in shapes.items():
        values = np.frombuffer(raw, "<f4", math.prod(shape), header.tensors[name].start)
        bad = np.flatnonzero(~np.isfinite(values))
        if len(bad):
            raise ValueError(f"tensor '{name}' holds NaN or infinite values (the first at index {bad[0]}): export a "
                             "checkpoint from before training diverged")
        weights[name] = torch.from_numpy(values.astype(np.float32).reshape(shape))
    return weights
