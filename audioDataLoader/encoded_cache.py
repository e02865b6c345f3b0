"""The mu-law codes of a data folder, encoded file by file once and memory-mapped from `.cache/` beside the folder.

The cache of `data/nsynth.64.76_sm` is `data/.cache/nsynth.64.76_sm-<hash>.*`: the data folder itself is left as
it is (it may be shared, or copied whole), and deleting `.cache/` only costs one rebuild.

A cache is a small JSON index plus one data file of codes (and one of float samples when the network reads raw
samples). The index records what produced the codes (the settings, every file's name, size and modification
time, the parameter values) and names its data files; it is written last, so a build cut short leaves nothing
that passes for a cache. Processes that map the same data file share its pages in the page cache.
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import os
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

CACHE_FOLDER = ".cache"
FORMAT_VERSION = 1
# Samples encoded at a time: mu_law_encode works in float64 with temporaries, about 40 bytes a sample.
ENCODE_CHUNK = 1 << 20


@dataclass
class EncodedAudio:
    """Every file's samples end to end: mu-law codes, float samples when kept, and each file's length."""

    codes: np.ndarray
    audio: np.ndarray | None
    lengths: np.ndarray


def code_dtype(numtokens: int) -> np.dtype:
    """Return the smallest integer type that holds `numtokens` classes."""
    return np.dtype(np.uint8 if numtokens <= 256 else np.int16)


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
    """Return the arrays of the cache at `index_path` memory-mapped, or None where it is missing or not for `key`."""
    try:
        index = json.loads(index_path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(index, dict) or index.get("key") != key:
        return None
    lengths = np.asarray(index["lengths"], dtype=np.int64)
    total = int(lengths.sum())
    arrays = {}
    for kind, dtype in kinds.items():
        path = index_path.parent / index["data"][kind]
        try:
            if path.stat().st_size != total * dtype.itemsize:
                return None
            # Copy-on-write: torch.from_numpy wants a writable array; nothing writes it, and a write would stay in
            # this process, never reaching the file. Unwritten pages are the page cache's, shared by every process.
            arrays[kind] = np.memmap(path, dtype=dtype, mode="c", shape=(total,))
        except OSError:  # removed by a rebuild since the index was read
            return None
    return EncodedAudio(arrays["codes"], arrays.get("audio"), lengths)


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
        lengths = _write_data(partial, files, read, numtokens, kinds)
        for tmp, path in zip(partial, written):
            os.replace(tmp, path)
        text = json.dumps({"key": key, "data": names, "lengths": lengths}) + "\n"
        write_atomically(index_path, lambda f: f.write(text.encode()))
    except BaseException:
        _remove(partial + written)
        raise
    _remove(p for p in folder.glob(f"{stem}.*") if p.suffix[1:] in ("codes", "audio") and p not in written)


def _write_data(paths: list[Path], files: list[Path], read: Callable[[Path], np.ndarray], numtokens: int,
                kinds: dict[str, np.dtype]) -> list[int]:
    """Write each kind of array of every file end to end into `paths`, synced to disk; return the file lengths."""
    handles = [open(path, "xb") for path in paths]
    try:
        lengths = []
        for arrays in _encoded_files(files, read, numtokens, kinds):
            for kind, handle in zip(kinds, handles):
                handle.write(arrays[kind].data)
            lengths.append(len(arrays["codes"]))
        for handle in handles:
            handle.flush()
            os.fsync(handle.fileno())
    finally:
        for handle in handles:
            handle.close()
    return lengths


def _remove(paths: Iterable[Path]) -> None:
    for path in paths:
        path.unlink(missing_ok=True)
