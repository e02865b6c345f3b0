"""The table of spoiled model files that the Python loader and the C runtime must judge alike.

Each case spoils a valid small model file (`valid_model_file`: 3 parameters, 2 layers of 16, a periodic reference of
2 harmonics on parameter 2): its metadata, its header's text or its weights. `refused` is a
piece of the reason both loaders give, or None where both must accept the file. The limits are the C runtime's
(runtime/model_file.c, utils/model_file_checks.py).
"""
from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field

import torch

from audioDataLoader.audio_dataset import AudioDatasetConfig
from model.gru_audio_model import RNN, GRUAudioConfig
from tests.harness.run_folders import TINY_SPECS
from utils.model_file import model_file_bytes


@dataclass(frozen=True)
class Case:
    name: str
    metadata: dict[str, str | None] = field(default_factory=dict)  # None: remove the key
    header_text: tuple[str, str] | None = None  # replace the first occurrence of this text in the header's JSON
    after: str = ""  # text after the header's JSON ("\udcXX" writes the byte XX, not UTF-8)
    nan_weight: bool = False  # a NaN as the first weight of the first tensor
    refused: str | None = None


def valid_model_file() -> bytes:
    """A valid small file: 3 parameters, a periodic reference of 2 harmonics on "p", 2 layers of 16."""
    torch.manual_seed(0)
    data = AudioDatasetConfig(data_dir="data", parameter_specs=TINY_SPECS, pitch_parameter="p",
                              reference_harmonics=2)
    model = RNN(GRUAudioConfig(cond_size=data.conditioning_size, hidden_size=16, num_layers=2)).eval()
    return model_file_bytes(model, data, "in memory")


def spoil(raw: bytes, case: Case) -> bytes:
    """Return the model file `raw` spoiled as `case` says, its header size written anew."""
    size = struct.unpack("<Q", raw[:8])[0]
    header, data = json.loads(raw[8:8 + size]), bytearray(raw[8 + size:])
    metadata = header["__metadata__"]
    for key, value in case.metadata.items():
        if value is None:
            del metadata[key]
        else:
            metadata[key] = value
    text = json.dumps(header, ensure_ascii=False, sort_keys=True)  # safetensors' own order changes between runs
    if case.header_text:
        old, new = case.header_text
        assert old in text, old
        text = text.replace(old, new, 1)
    if case.nan_weight:
        data[:4] = struct.pack("<f", float("nan"))
    encoded = (text + case.after).encode("utf-8", "surrogateescape")
    return struct.pack("<Q", len(encoded)) + encoded + bytes(data)


def _sizes() -> list[Case]:
    cases = [
        Case("num_layers 1,000,000 in a small file", {"num_layers": "1000000"}, refused="'num_layers'"),
        Case("num_layers above the runtime's 256", {"num_layers": "257"}, refused="'num_layers'"),
        Case("hidden_size above the runtime's 8192", {"hidden_size": "8193"}, refused="'hidden_size'"),
        Case("hidden_size 8192 without its weights", {"hidden_size": "8192"}, refused="wrong shape"),
        Case("a negative hidden_size", {"hidden_size": "-16"}, refused="'hidden_size'"),
        Case("a 20-digit hidden_size", {"hidden_size": "16" * 10}, refused="'hidden_size'"),
        Case("a 20-digit negative num_layers", {"num_layers": "-" + "9" * 20}, refused="'num_layers'"),
        Case("cond_size above 1024", {"cond_size": "1025"}, refused="'cond_size'"),
        Case("numtokens above 65536", {"numtokens": "65537"}, refused="'numtokens'"),
        Case("numtokens 1", {"numtokens": "1"}, refused="'numtokens'"),
        Case("sample_rate 0", {"sample_rate": "0"}, refused="'sample_rate'"),
        Case("encode 2", {"encode": "2"}, refused="'encode'"),
        Case("cond_every_layer 2", {"cond_every_layer": "2"}, refused="'cond_every_layer'"),
        Case("input_size 2", {"input_size": "2"}, refused="'input_size'"),
        Case("format_version 3", {"format_version": "3"}, refused="format version 3"),
        Case("format_version 0", {"format_version": "0"}, refused="format version 0"),
        Case("format_version 02 (strtol's leading zero)", {"format_version": "02"}),
        Case("format_version after 5000 zeros", {"format_version": "0" * 5000 + "2"}),
        Case("another format", {"format": "RNNControl"}, refused="not an RNNControl model"),
    ]
    for text in ["", " 16", "16 ", "+16", "16.0", "1_6", "0x10", "\u0661\u0666", "16\n", "1e1"]:
        cases.append(Case(f"hidden_size written {text!r}", {"hidden_size": text}, refused="'hidden_size'"))
    for key in ["format_version", "hidden_size", "numtokens", "sample_rate", "dropout", "reference.harmonics",
                "reference.pitch", "reference.units", "parameter.1.name", "parameter.0.min", "parameter.2.max"]:
        cases.append(Case(f"no {key}", {key: None}, refused=f"'{key}' missing"))
    return cases


def _ranges() -> list[Case]:
    cases = []
    for text in ["nan", "NaN", "inf", "-inf", "infinity", "1e309", "", " 1", "1_0", "0x1p3", "1e", ".", "--1"]:
        cases.append(Case(f"parameter.1.max {text!r}", {"parameter.1.max": text}, refused="not a finite number"))
    for text in ["1e39", "-1e39", "3.5e38", "3.4028236e38"]:
        cases.append(Case(f"parameter.0.min {text} (infinite in float32)", {"parameter.0.min": text},
                          refused="beyond float32's range"))
    for text in ["3.4e38", "-3.4028234e38", "+5", ".5", "5.", "1E3", "1e-50", "007"]:
        cases.append(Case(f"parameter.0.min {text!r}", {"parameter.0.min": text}))
    cases += [
        Case("a range empty in float32", {"parameter.1.min": "1.0", "parameter.1.max": "1.00000001"},
             refused="empty range"),
        Case("an inverted range", {"parameter.1.min": "1.0", "parameter.1.max": "0.0"}),
        Case("dropout 1.5", {"dropout": "1.5"}, refused="'dropout'"),
        Case("dropout -0.1", {"dropout": "-0.1"}, refused="'dropout'"),
        Case("dropout nan", {"dropout": "nan"}, refused="'dropout'"),
        Case("dropout 1", {"dropout": "1"}),
        Case("two parameters of one name", {"parameter.1.name": "instID"}, refused="named twice"),
        Case("an empty parameter name", {"parameter.1.name": ""}, refused="'parameter.1.name'"),
        Case("a 63-byte parameter name", {"parameter.1.name": "n" * 63}),
        Case("a 64-byte parameter name", {"parameter.1.name": "n" * 64}, refused="'parameter.1.name'"),
        Case("a 64-byte name of 32 characters", {"parameter.1.name": "\u00e9" * 32}, refused="'parameter.1.name'"),
        Case("a 63-byte name of 32 characters", {"parameter.1.name": "\u00e9" * 31 + "n"}),
        Case("a name with an emoji", {"parameter.1.name": "a\U0001F3B5"}),
        Case("no data_dir or source (the runtime reads neither)", {"data_dir": None, "source": None}),
    ]
    return cases


def _reference() -> list[Case]:
    return [
        Case("reference.harmonics above 16", {"reference.harmonics": "17"}, refused="'reference.harmonics'"),
        Case("reference channels that leave no parameter", {"reference.harmonics": "4"},
             refused="'reference.harmonics' is 4"),
        Case("reference.pitch past the parameters", {"reference.pitch": "3"}, refused="'reference.pitch'"),
        Case("reference.units Hz", {"reference.units": "Hz"}, refused="'reference.units'"),
        Case("version 1 reads no reference, so cond_size names 7 parameters",
             {"format_version": "1"}, refused="'parameter.3.name' missing"),
    ]


def _header() -> list[Case]:
    return [
        Case("a metadata key given twice", header_text=('"hidden_size": "16"', '"hidden_size": "16", "hidden_size": '
                                                                             '"9999"'), refused="twice"),
        Case("a tensor given twice", header_text=('"output.bias": {', '"output.bias": {"dtype": "F32", "shape": [1], '
                                                                     '"data_offsets": [0, 4]}, "output.bias": {'),
             refused="twice"),
        Case("a tensor field given twice", header_text=('"dtype": "F32"', '"dtype": "F32", "dtype": "F32"'),
             refused="twice"),
        Case("an unknown tensor field", header_text=('"dtype": "F32"', '"dtype": "F32", "note": "x"'),
             refused="unknown field"),
        Case("an extra tensor", header_text=('{"', '{"extra": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}, '
                                                '"'), refused="tensors where its sizes call for"),
        Case("a tensor in F16", header_text=('"dtype": "F32"', '"dtype": "F16"'), refused="F16"),
        Case("a shape that disagrees with the metadata", metadata={"numtokens": "255"}, refused="wrong shape"),
        Case("a size with a leading zero", header_text=('"shape": [', '"shape": [0'), refused="malformed header"),
        Case("a negative size", header_text=('"shape": [', '"shape": [-'), refused="malformed header"),
        Case("a size written as a float", header_text=('"shape": [16', '"shape": [16.0'), refused="malformed header"),
        Case("a size of 2^64", header_text=('"shape": [', '"shape": [18446744073709551616, '),
             refused="malformed header"),
        Case("\\u0000 in a metadata value", header_text=('"source": "', '"source": "\\u0000'), refused="\\u0000"),
        Case("a lone surrogate in a metadata value", header_text=('"source": "', '"source": "\\ud800'),
             refused="surrogate"),
        Case("an escaped surrogate pair", header_text=('"source": "', '"source": "\\ud83c\\udfb5')),
        Case("an unknown escape", header_text=('"source": "', '"source": "\\x'), refused="malformed header"),
        Case("a raw tab inside a string", header_text=('"source": "', '"source": "\t'), refused="malformed header"),
        Case("text after the header's object", after="x", refused="after its closing"),
        Case("spaces after the header's object (safetensors pads with them)", after="    "),
        Case("a byte that is not UTF-8", header_text=('"source": "', '"source": "\udcff'), refused="not UTF-8"),
        Case("an overlong UTF-8 form", header_text=('"source": "', '"source": "\udcc0\udcaf'), refused="not UTF-8"),
        Case("a NaN weight", nan_weight=True, refused="NaN or infinite"),
        Case("a metadata value that is a number", header_text=('"hidden_size": "16"', '"hidden_size": 16'),
             refused="malformed header"),
    ]


CASES = _sizes() + _ranges() + _reference() + _header()
