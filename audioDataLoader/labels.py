"""Each file's parameter values from a table instead of its name: a CSV, or a JSON object like NSynth's examples.json.

CSV: a header row `file,NAME1,NAME2,...`, then one row a file. JSON: {"<file>": {"NAME1": value, ...}, ...}, the
layout of NSynth's examples.json, whose keys are the note names of `audio/<note>.wav` and whose fields include
`pitch`, `velocity`, `instrument`, `instrument_family` and `instrument_source`. A file may be written with or
without its `.wav`. An empty cell or a missing field leaves that file without the parameter.
"""
from __future__ import annotations

import math
from pathlib import Path

from utils.checks import FLOAT32_MAX
from utils.json_file import csv_rows, read_json


def label_key(name: str) -> str:
    """Return the file name a table's row stands for: NSynth's keys are note names without `.wav`."""
    return name if name.lower().endswith(".wav") else f"{name}.wav"


def read_labels(path: str | Path, names: list[str]) -> dict[str, dict[str, float]]:
    """Return {file name: {name: value}} for each row of the table at `path` (.csv or .json), for `names` only."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"labels table {path} does not exist; give the path of a .csv or .json table")
    if path.suffix.lower() == ".csv":
        return _read_csv(path, names)
    if path.suffix.lower() == ".json":
        return _read_json(path, names)
    raise ValueError(f"labels table {path}: use a .csv (file,NAME1,NAME2,...) or a .json like NSynth's "
                     "examples.json")


def _number(text: object, path: Path, where: str, name: str) -> float | None:
    """Return a cell's value as a float, None for an empty cell, or raise naming the table, the row and the column."""
    if text is None or text == "":
        return None
    try:
        if isinstance(text, bool) or not isinstance(text, (int, float, str)):
            raise ValueError
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and abs(value) <= FLOAT32_MAX):  # the network holds values as float32
        raise ValueError(f"{path}, {where}: {name} = {text!r} is not a finite number within float32's range "
                         f"(±{FLOAT32_MAX:.3g}); write a number there, or leave it empty to skip the file")
    return value


def _read_csv(path: Path, names: list[str]) -> dict[str, dict[str, float]]:
    with csv_rows(path) as reader:
        columns = [c.strip() for c in reader.fieldnames or []]
        reader.fieldnames = columns
        absent = [name for name in ["file", *names] if name not in columns]
        if absent:
            raise ValueError(f"{path} has no column {absent}; its header is {columns}. The first row must name the "
                             f"columns: file,{','.join(names)}")
        table, lines = {}, {}
        for row in reader:
            line = reader.line_num
            if not (row["file"] or "").strip():
                raise ValueError(f"{path} line {line}: the file column is empty; name the row's wav file")
            key = label_key(row["file"].strip())
            if key in table:
                raise ValueError(f"{path} line {line}: {key} already has a row (line {lines[key]}); keep one")
            values = {name: _number(row[name].strip() if row[name] else None, path, f"line {line} ({key})", name)
                      for name in names}
            table[key], lines[key] = {n: v for n, v in values.items() if v is not None}, line
    return table


def _read_json(path: Path, names: list[str]) -> dict[str, dict[str, float]]:
    entries = read_json(path)
    if not isinstance(entries, dict) or not all(isinstance(entry, dict) for entry in entries.values()):
        raise ValueError(f"{path} must hold one object of the form {{\"<file>\": {{\"NAME\": value, ...}}, ...}}, "
                         "like NSynth's examples.json")
    fields = set().union(*entries.values()) if entries else set()
    absent = [name for name in names if name not in fields]
    if absent:
        raise ValueError(f"no entry of {path} has the field(s) {absent}; its fields are {sorted(fields)}")
    table = {}
    for key, entry in entries.items():
        values = {name: _number(entry.get(name), path, f"entry {key!r}", name) for name in names}
        if label_key(key) in table:
            raise ValueError(f"{path}: {label_key(key)} has two entries ({key!r} and one with or without .wav)")
        table[label_key(key)] = {n: v for n, v in values.items() if v is not None}
    return table
