"""The mu-law codes of a data folder, encoded file by file once and memory-mapped from `.cache/` beside the folder.

The cache of `data/nsynth.64.76_sm` is `data/.cache/nsynth.64.76_sm-<hash>.*`: the data folder itself is left as
it is (it may be shared, or copied whole), and deleting `.cache/` only costs one rebuild.

A cache is a small JSON index plus one data file of codes (and one of float samples when the network reads raw
samples). The index records what produced the codes (the settings, every file's name, size and modification
time, the parameter values), names its data files and holds their SHA-256; it is written last, so a build cut
short leaves nothing that passes for a cache. A data file written to since (its change time tells, even where its
size and modification time were kept) is checked against its SHA-256, and rebuilt with a warning if it differs,
as is an index that is not one this module wrote. Processes that map the same data file share
its pages in the page cache.
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import uuid
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np
from tqdm.auto import tqdm

from audioDataLoader.mulaw import mu_law_encode
from utils.atomic_write import write_atomically
from utils.json_file import read_json

CACHE_FOLDER = ".cache"
FORMAT_VERSION = 2  # 2: codes above 256 classes as uint16 (int16 before), and checksums
# The C runtime's limit: uint16 codes hold up to 65,536 classes.
MAX_NUMTOKENS = 65_536
# Samples encoded at a time: mu_law_encode works in float64 with temporaries, about 40 bytes a sample.
ENCODE_CHUNK = 1 << 20


@dataclass
class EncodedAudio:
    """Every file's samples end to end: mu-law codes, float samples when kept, and each file's length."""

    codes: np.ndarray
    audio: np.ndarray | None
    lengths: np.ndarray


def code_dtype(numtokens: int) -> np.dtype:
    """Return the smallest unsigned integer type that holds `numtokens` classes (at most MAX_NUMTOKENS)."""
    if numtokens > MAX_NUMTOKENS:
        raise ValueError(f"numtokens {numtokens} is more than the {MAX_NUMTOKENS:,} classes a code may hold")
    return np.dtype(np.uint8 if numtokens <= 256 else np.uint16)


def encoded_audio(folder: Path, files: list[Path], values: np.ndarray, read: Callable[[Path], np.ndarray],
                  settings: dict, numtokens: int, keep_audio: bool, cache: bool = True) -> EncodedAudio:
    """Return the codes of `files` (and their samples if `keep_audio`), memory-mapped from the folder's cache.

    `read(path)` gives a file's float samples; `settings` is every other setting that decides the files or their
    samples (it names the cache, so runs with other settings keep their own). A cache that does not match the
    files, their sizes and times, `values` and the settings is rebuilt. With `cache=False`, or when the cache
    cannot be written, the codes are encoded into memory instead.
    """
    kinds = _kinds(numtokens, keep_audio)
    if not cache:
        return _encode_in_memory(files, read, numtokens, kinds)
    folder = folder.resolve()
    key = _key(folder, files, values, settings, numtokens, keep_audio)
    # Named for the folder and the settings, not the files: a changed file replaces its cache instead of adding one.
    naming = json.dumps({k: v for k, v in key.items() if k not in ("files", "values")}, sort_keys=True)
    index_path = folder.parent / CACHE_FOLDER / f"{folder.name}-{hashlib.sha256(naming.encode()).hexdigest()[:16]}.json"
    found = _open_valid(index_path, key, kinds)  # no lock needed to read a finished cache
    if found is not None:
        return found
    try:
        index_path.parent.mkdir(exist_ok=True)
        with _locked(index_path.with_suffix(".lock")):
            # Another process (a DDP rank) may have built it while this one waited for the lock.
            found = _open_valid(index_path, key, kinds)
            if found is None:
                _build(index_path, key, files, read, numtokens, kinds)
                found = _open_valid(index_path, key, kinds)
    except OSError as error:
        warnings.warn(f"cannot write the encoded cache in {index_path.parent} ({error}); encoding {len(files)} "
                      "files in memory this time. Make that folder writable (or free some space) to cache them.",
                      stacklevel=4)
        return _encode_in_memory(files, read, numtokens, kinds)
    return found


def _kinds(numtokens: int, keep_audio: bool) -> dict[str, np.dtype]:
    """Return the arrays a cache holds and their types: the codes, and the float samples when kept."""
    return {"codes": code_dtype(numtokens), **({"audio": np.dtype(np.float32)} if keep_audio else {})}


def _key(folder: Path, files: list[Path], values: np.ndarray, settings: dict, numtokens: int,
         keep_audio: bool) -> dict:
    """Return everything the cached arrays depend on, as it reads back from JSON (lists, not tuples)."""
    stats = [(path.name, path.stat()) for path in files]
    return {"format_version": FORMAT_VERSION, "folder": str(folder), "settings": json.loads(json.dumps(settings)),
            "numtokens": numtokens, "keep_audio": keep_audio,
            "files": [[name, stat.st_size, stat.st_mtime_ns] for name, stat in stats],
            "values": np.asarray(values, dtype=np.float32).tolist()}


def _open_valid(index_path: Path, key: dict, kinds: dict[str, np.dtype]) -> EncodedAudio | None:
    """Return the arrays of the cache at `index_path` memory-mapped, or None where it is missing or not for `key`.

    An index or data file that is not as this module wrote it is reported (it is then rebuilt).
    """
    try:
        index = read_json(index_path)
    except FileNotFoundError:
        return None
    except ValueError as error:
        return _broken(index_path, str(error))
    if not isinstance(index, dict) or index.get("key") != key:
        return None
    problem = _index_problem(index, index_path.stem, len(key["files"]), kinds)
    if problem:
        return _broken(index_path, problem)
    lengths = np.asarray(index["lengths"], dtype=np.int64)
    total = int(lengths.sum())
    arrays = {}
    for kind, dtype in kinds.items():
        path = index_path.parent / index["data"][kind]
        try:
            info = path.stat()
            if info.st_size != total * dtype.itemsize:
                return None
            # Copy-on-write: torch.from_numpy wants a writable array; nothing writes it, and a write would stay in
            # this process, never reaching the file. Unwritten pages are the page cache's, shared by every process.
            arrays[kind] = np.memmap(path, dtype=dtype, mode="c", shape=(total,))
        except OSError:  # removed by a rebuild since the index was read
            return None
        # A file untouched since it was written needs no reading: no one can set its change time (ctime) back, as
        # they can its modification time. Anything else is read whole once more and checked.
        touched = index.get("stamps", {}).get(kind) != _stamp(info)
        if touched and _checksum(arrays[kind]) != index["checksums"][kind]:
            return _broken(index_path, f"{path.name} does not match its checksum")
    return EncodedAudio(arrays["codes"], arrays.get("audio"), lengths)


def _index_problem(index: dict, stem: str, files: int, kinds: dict[str, np.dtype]) -> str | None:
    """Return what is wrong with an index that names the right key, or None: its data files must lie beside it."""
    data, lengths, checksums = index.get("data"), index.get("lengths"), index.get("checksums")
    names = re.compile(rf"{re.escape(stem)}\.[0-9a-f]{{12}}\.({'|'.join(kinds)})")
    if not (isinstance(data, dict) and isinstance(checksums, dict) and set(data) == set(checksums) == set(kinds)):
        return "its data files or their checksums are missing"
    if not all(isinstance(name, str) and names.fullmatch(name) and name.endswith(kind) for kind, name in data.items()):
        return f"it names data files other than its own ({sorted(map(str, data.values()))})"
    if not (isinstance(lengths, list) and len(lengths) == files
            and all(type(n) is int and n >= 0 for n in lengths)):
        return "its file lengths are not one count of samples for each file"
    return None


def _broken(index_path: Path, problem: str) -> None:
    warnings.warn(f"the encoded cache {index_path} is not as RNNControl wrote it ({problem}); encoding the files "
                  "again", stacklevel=5)
    return None


def _stamp(info: os.stat_result) -> list[int]:
    """Return what identifies one writing of a file: its inode and change time (as the index holds them)."""
    return [info.st_ino, info.st_ctime_ns]


def _checksum(array: np.ndarray) -> str:
    """Return the SHA-256 of an array's bytes (as _write_data computes it while writing)."""
    return hashlib.sha256(array.data).hexdigest()


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on `path` (created if needed): one process builds while the others wait."""
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _encoded_files(files: list[Path], read: Callable[[Path], np.ndarray], numtokens: int,
                   kinds: dict[str, np.dtype]) -> Iterator[dict[str, np.ndarray]]:
    """Yield each file's arrays in turn, so memory holds one file at a time."""
    for path in tqdm(files, desc="encoding audio", unit="file", disable=None, leave=False):
        samples = read(path)
        codes = np.empty(len(samples), dtype=kinds["codes"])
        for start in range(0, len(samples), ENCODE_CHUNK):
            codes[start:start + ENCODE_CHUNK] = mu_law_encode(samples[start:start + ENCODE_CHUNK], numtokens)
        yield {"codes": codes, "audio": samples.astype(np.float32, copy=False)}


def _encode_in_memory(files: list[Path], read: Callable[[Path], np.ndarray], numtokens: int,
                      kinds: dict[str, np.dtype]) -> EncodedAudio:
    parts = {kind: [] for kind in kinds}
    for arrays in _encoded_files(files, read, numtokens, kinds):
        for kind in kinds:
            parts[kind].append(arrays[kind])
    lengths = np.array([len(codes) for codes in parts["codes"]], dtype=np.int64)
    joined = {kind: np.concatenate(parts.pop(kind)) for kind in kinds}
    return EncodedAudio(joined["codes"], joined.get("audio"), lengths)


def _build(index_path: Path, key: dict, files: list[Path], read: Callable[[Path], np.ndarray], numtokens: int,
           kinds: dict[str, np.dtype]) -> None:
    """Encode every file into new data files, then write the index that names them (call with the lock held)."""
    folder, stem = index_path.parent, index_path.stem
    _remove(folder.glob(f"{stem}.*.tmp"))  # left by a build that was killed
    token = uuid.uuid4().hex[:12]
    names = {kind: f"{stem}.{token}.{kind}" for kind in kinds}
    written = [folder / name for name in names.values()]
    partial = [path.with_name(path.name + ".tmp") for path in written]
    try:
        lengths, checksums = _write_data(partial, files, read, numtokens, kinds)
        for tmp, path in zip(partial, written):
            os.replace(tmp, path)
        stamps = {kind: _stamp(path.stat()) for kind, path in zip(kinds, written)}
        text = json.dumps({"key": key, "data": names, "lengths": lengths, "checksums": checksums,
                           "stamps": stamps}) + "\n"
        write_atomically(index_path, lambda f: f.write(text.encode()))
    except BaseException:
        _remove(partial + written)
        raise
    _remove(p for p in folder.glob(f"{stem}.*") if p.suffix[1:] in ("codes", "audio") and p not in written)


def _write_data(paths: list[Path], files: list[Path], read: Callable[[Path], np.ndarray], numtokens: int,
                kinds: dict[str, np.dtype]) -> tuple[list[int], dict[str, str]]:
    """Write each kind of array of every file end to end into `paths`, synced to disk.

    Return the file lengths and each data file's SHA-256.
    """
    handles = [open(path, "xb") for path in paths]
    digests = {kind: hashlib.sha256() for kind in kinds}
    try:
        lengths = []
        for arrays in _encoded_files(files, read, numtokens, kinds):
            for kind, handle in zip(kinds, handles):
                handle.write(arrays[kind].data)
                digests[kind].update(arrays[kind].data)
            lengths.append(len(arrays["codes"]))
        for handle in handles:
            handle.flush()
            os.fsync(handle.fileno())
    finally:
        for handle in handles:
            handle.close()
    return lengths, {kind: digest.hexdigest() for kind, digest in digests.items()}


def _remove(paths: Iterable[Path]) -> None:
    for path in paths:
        path.unlink(missing_ok=True)
