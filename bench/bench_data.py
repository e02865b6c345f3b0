"""Data sets larger than memory: the encoded cache's build memory, start-up, batch cost and page sharing.

Run from the repository root: .venv/bin/python -m bench.bench_data [--hours 2] [--start_files 10000]
It writes a synthetic corpus of noise wavs (2 hours = 115 M samples in 2,880 files of 2.5 s by default) to a
temporary folder and measures, against the targets of issue 15:
1. peak RSS of building the cache, above the interpreter's baseline (a fresh child process each, VmHWM), against
   the old path (every file read, joined, then encoded at once) on a shorter corpus, per sample;
2. a second start with the cache for `--start_files` files, against building one without it (medians);
3. drawing a batch from the memory map, as a share of a CPU training step, and against the in-memory codes;
4. two processes (as two DDP ranks on one machine) each holding the whole cache: /proc/<pid>/smaps of its mapping
   and smaps_rollup, against two processes that encode the corpus into their own memory.
"""
from __future__ import annotations

import argparse
import multiprocessing
import statistics
import tempfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from audioDataLoader.audio_dataset import AudioDatasetConfig, MuLawAudioDataset, read_mono
from audioDataLoader.mulaw import mu_law_encode
from bench.bench_training import SAMPLE_RATE, SPECS, median_seconds, training_step, write_noise_files

MB = 1 << 20


def _config(folder: Path) -> AudioDatasetConfig:
    return AudioDatasetConfig(data_dir=str(folder), parameter_specs=SPECS)


def _status_kb(field: str, pid: str = "self") -> int:
    """Return a field of /proc/<pid>/status in kB (VmRSS, VmHWM)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def _whole_corpus_at_once(folder: Path) -> None:
    """The dataset's path before the cache: every file read, joined, then encoded at once."""
    dataset_files = sorted(folder.glob("*.wav"))
    mu_law_encode(np.concatenate([read_mono(path, SAMPLE_RATE) for path in dataset_files]))


def _extra_peak_mb(folder: str, old_path: bool) -> float:
    """In a fresh process: return the peak RSS (VmHWM) of building the codes, above the RSS before it, in MB."""
    Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
    baseline = _status_kb("VmRSS")
    if old_path:
        _whole_corpus_at_once(Path(folder))
    else:
        MuLawAudioDataset(_config(Path(folder)))
    return (_status_kb("VmHWM") - baseline) / 1024


def _in_child(function: Callable[..., float], *args: object) -> float:
    """Return function(*args) run in a fresh process, so that its peak memory is its own."""
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(function, *args).result()


def build_memory(folder: Path, short_folder: Path, samples: int, short_samples: int) -> None:
    """Target 1: print the build's peak RSS above baseline, and the old path's per sample on a shorter corpus."""
    start = time.perf_counter()
    cached = _in_child(_extra_peak_mb, str(folder), False)
    seconds = time.perf_counter() - start
    old = _in_child(_extra_peak_mb, str(short_folder), True)
    print(f"1. build of the cache, {samples / 1e6:.0f} M samples: peak RSS {cached:.0f} MB above the interpreter's "
          f"baseline (target < 300 MB), {seconds:.0f} s in all, {cached * MB / samples:.2f} bytes a sample")
    print(f"   old path (read all, join, encode at once), {short_samples / 1e6:.0f} M samples: {old:.0f} MB, "
          f"{old * MB / short_samples:.1f} bytes a sample; at that rate the {samples / 1e6:.0f} M samples would need "
          f"{old * samples / short_samples / 1024:.1f} GB")


def start_up(folder: Path, files: int, repeats: int) -> None:
    """Target 2: print the median time of a start with the cache in place, against one that encodes every file."""
    MuLawAudioDataset(_config(folder))  # builds the cache
    with_cache = [_seconds(lambda: MuLawAudioDataset(_config(folder))) for _ in range(repeats)]
    cpu = [_seconds(lambda: MuLawAudioDataset(_config(folder)), time.process_time) for _ in range(repeats)]
    without = [_seconds(lambda: MuLawAudioDataset(_config(folder), cache=False)) for _ in range(2)]
    peak = _in_child(_extra_peak_mb, str(folder), False)
    print(f"2. start with the cache, {files:,} files: median {statistics.median(with_cache):.3f} s of {repeats} "
          f"(target < 1 s), {statistics.median(cpu):.3f} s of CPU time (the wall time on a machine with no other "
          f"load); without the cache (every file read and encoded) {statistics.median(without):.1f} s, "
          f"{statistics.median(without) / statistics.median(with_cache):.0f}x longer; peak RSS of a start with the "
          f"cache {peak:.0f} MB above baseline, {peak * MB / files / 1024:.1f} kB a file")


def _seconds(work: Callable[[], object], clock: Callable[[], float] = time.perf_counter) -> float:
    start = clock()
    work()
    return clock() - start


def batch_cost(folder: Path, batch: int, seq: int, repeats: int) -> None:
    """Target 3: print a batch drawn from the memory map against a CPU training step and the in-memory codes."""
    config = AudioDatasetConfig(data_dir=str(folder), parameter_specs=SPECS, sequence_length=seq)
    mapped, in_memory = MuLawAudioDataset(config), MuLawAudioDataset(config, cache=False)
    generator = torch.Generator().manual_seed(0)
    cold = _seconds(lambda: mapped.sample_batch(batch, generator))
    step = training_step(mapped.sample_batch(batch, generator), torch.device("cpu"), per_step=False)
    times = median_seconds({"mapped": lambda: mapped.sample_batch(batch, generator),
                            "in memory": lambda: in_memory.sample_batch(batch, generator),
                            "training step": step}, repeats, torch.device("cpu"))
    share = times["mapped"] / (times["mapped"] + times["training step"])
    print(f"3. a batch of {batch} x {seq} from the memory map: {times['mapped'] * 1e3:.1f} ms (median of {repeats}; "
          f"the first one {cold * 1e3:.1f} ms), {100 * share:.2f} % of a CPU training step of "
          f"{times['training step']:.2f} s (target < 5 %); from memory {times['in memory'] * 1e3:.1f} ms, ratio "
          f"{times['mapped'] / times['in memory']:.2f}")


def _smaps() -> dict[str, int]:
    """Return the kB fields of this process's smaps_rollup ("all ...") and of its mapping of a cache ("file ...")."""
    fields = {f"all {line.split()[0][:-1]}": int(line.split()[1])
              for line in Path("/proc/self/smaps_rollup").read_text().splitlines()[1:] if line.endswith("kB")}
    lines = Path("/proc/self/smaps").read_text().splitlines()
    for i, line in enumerate(lines):
        if line.endswith(".codes"):  # the cache's data file (see encoded_cache.py)
            for entry in lines[i + 1:]:
                if not entry.endswith("kB"):
                    break
                fields[f"file {entry.split()[0][:-1]}"] = int(entry.split()[1])
    return fields


def _hold_and_measure(folder: str, cache: bool, barrier: threading.Barrier, results: multiprocessing.Queue) -> None:
    """One rank: open the data set, touch all its codes, wait for the other, then put its memory figures."""
    dataset = MuLawAudioDataset(_config(Path(folder)), cache=cache)
    codes = dataset.codes.numpy()
    total = sum(int(codes[i:i + 16 * MB].sum(dtype=np.int64)) for i in range(0, len(codes), 16 * MB))
    barrier.wait()  # both hold the whole corpus now
    results.put({**_smaps(), "checksum": total})
    barrier.wait()  # neither lets go before both have measured


def page_sharing(folder: Path, codes_mb: float) -> None:
    """Target 4: print what two processes holding the corpus cost together, mapped and in their own memory."""
    context = multiprocessing.get_context("spawn")
    for cache in (True, False):
        barrier, results = context.Barrier(2), context.Queue()
        processes = [context.Process(target=_hold_and_measure, args=(str(folder), cache, barrier, results))
                     for _ in range(2)]
        for process in processes:
            process.start()
        ranks = [results.get() for _ in processes]
        for process in processes:
            process.join()
        label = "mapped cache" if cache else "in own memory"
        for rank, figures in enumerate(ranks):
            mapping = (f"; its mapping of the cache: Rss {figures['file Rss'] / 1024:.0f}, Pss "
                       f"{figures['file Pss'] / 1024:.0f}, Shared_Clean {figures['file Shared_Clean'] / 1024:.0f}, "
                       f"Private {(figures['file Private_Clean'] + figures['file Private_Dirty']) / 1024:.0f}"
                       if cache else "")
            print(f"   {label}, rank {rank}: process Pss {figures['all Pss'] / 1024:.0f} MB, Private "
                  f"{(figures['all Private_Clean'] + figures['all Private_Dirty']) / 1024:.0f} MB{mapping} (MB)")
        assert ranks[0]["checksum"] == ranks[1]["checksum"], "the two ranks read different codes"
        together = sum(f["all Private_Clean"] + f["all Private_Dirty"] for f in ranks) / 1024
        print(f"4. two ranks, {label}: {together:.0f} MB private memory together (codes {codes_mb:.0f} MB)")


def main(argv: list[str] | None = None) -> None:
    """Command line: write the synthetic corpora and print the four measurements."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hours", type=float, default=2.0, help="length of the large corpus")
    parser.add_argument("--file_seconds", type=float, default=2.5, help="length of each of its files")
    parser.add_argument("--old_path_minutes", type=float, default=10.0,
                        help="corpus for the old path's memory (it needs about 40 bytes a sample)")
    parser.add_argument("--start_files", type=int, default=10000, help="files of the start-up corpus")
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--seq", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(), help="torch CPU threads")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as root:
        large, short, many = (Path(root) / name for name in ("large", "short", "many"))
        files = round(args.hours * 3600 / args.file_seconds)
        for folder, count, seconds in [(large, files, args.file_seconds),
                                       (short, round(args.old_path_minutes * 60 / args.file_seconds),
                                        args.file_seconds), (many, args.start_files, 0.25)]:
            folder.mkdir()
            write_noise_files(folder, count, seconds)
        samples = files * round(args.file_seconds * SAMPLE_RATE)
        print(f"synthetic corpus: {files:,} files of {args.file_seconds} s = {samples / 1e6:.0f} M samples; "
              f"{torch.get_num_threads()} CPU threads; figures from a shared machine vary")
        build_memory(large, short, samples, len(list(short.glob("*.wav"))) * round(args.file_seconds * SAMPLE_RATE))
        start_up(many, args.start_files, args.repeats)
        batch_cost(large, args.batch, args.seq, args.repeats)
        page_sharing(large, samples / MB)


if __name__ == "__main__":
    main()
