"""Build the default data set offline: sustained notes named by instrument, pitch and amplitude.

The original trained on nsynth.64.76_sm: 2 instruments (instID 1 clarinet, 2 trumpet) x MIDI pitches 64-76 x
10 amplitudes, each file the middle 2.5 s of a note, 16 kHz mono. This renders the same grid with FluidSynth and
a General MIDI SoundFont, or with additive synthesis where either is missing:

    python -m audioDataLoader.render_dataset                  # data/nsynth.64.76_sm, 260 files
    python -m audioDataLoader.render_dataset --programs 72 57 69 --output_dir data/three_winds

Programs are General MIDI numbers counted from 1, as in the GM list (72 Clarinet, 57 Trumpet, 69 Oboe);
instID 1, 2, ... follow their order. Each note is peak-normalised and then scaled by its amplitude value, so
a file's peak sample equals its `a` and levels are proportional to it.

The folder also gets rendered_with.json: how the notes were made ("soundfont" with its path, or "additive") and
the settings. A folder that already holds wavs is reused as it is; a warning says when its notes are additive
stand-ins although FluidSynth and a SoundFont are now found.
"""
from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from types import ModuleType
from typing import Callable, Iterable, Iterator

import numpy as np
import soundfile as sf

from utils.json_file import read_json

# Where Debian/Ubuntu (fluid-soundfont-gm), Fedora and Arch put a General MIDI SoundFont.
SOUNDFONT_PATHS = (
    "/usr/share/sounds/sf2/FluidR3_GM.sf2",
    "/usr/share/sounds/sf2/default-GM.sf2",
    "/usr/share/soundfonts/FluidR3_GM.sf2",
    "/usr/share/soundfonts/default.sf2",
)
INSTALL_HINT = ("install FluidSynth and a General MIDI SoundFont (Debian/Ubuntu: "
                "`apt-get install fluid-soundfont-gm libfluidsynth3`) or pass one with --soundfont")
# The additive fallback knows these GM programs: an odd-harmonic reed and a bright brass.
FALLBACK_TIMBRES = {72: "clarinet", 57: "trumpet"}
# The fallback's vibrato depth: enough to sound alive, far inside the 20-cent pitch tolerance.
VIBRATO_CENTS = 8.0
# Rendered before and after the kept middle, so neither attack nor release is in the file.
MARGIN_SECONDS = 0.5
# A whole note's release, from its note-off into silence (NSynth's notes: 3 s held, then 1 s of release).
RELEASE_SECONDS = 1.0
# The additive fallback's whole notes: an attack and an exponential release of these lengths.
ADDITIVE_ATTACK_SECONDS = 0.03
# Written into every folder this module builds: how its wavs were made, so a reused folder can say so.
RECORD_NAME = "rendered_with.json"

Note = tuple[int, int, int]  # (instID, GM program, MIDI pitch)


@dataclass(frozen=True)
class RenderConfig:
    """What to render: instruments, pitches, amplitudes, note length, rate, and where to write."""

    output_dir: str = "data/nsynth.64.76_sm"
    programs: tuple[int, ...] = (72, 57)  # GM numbers counted from 1; instID 1, 2, ... in this order
    pitches: tuple[int, ...] = tuple(range(64, 77))  # MIDI notes
    amplitudes: tuple[float, ...] = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)  # peak of each file
    note_seconds: float = 2.5
    sample_rate: int = 16000
    soundfont: str | None = None  # None: the first of SOUNDFONT_PATHS that exists
    fallback: bool = False  # True: additive synthesis even where a SoundFont is installed
    velocity: int = 100  # one velocity for all notes, so the timbre does not change with `a`
    # False: each file is the middle note_seconds of a held note (the original data set). True: the whole note as
    # NSynth ships it: the attack from the note-on, note_seconds held, then the release into silence.
    whole_notes: bool = False

    def __post_init__(self) -> None:
        for name in ("programs", "pitches", "amplitudes"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        checks = [
            ("programs", self.programs, lambda v: 1 <= v <= 128 and int(v) == v, "General MIDI numbers 1..128"),
            ("pitches", self.pitches, lambda v: 0 <= v <= 127 and int(v) == v, "MIDI notes 0..127"),
            ("amplitudes", self.amplitudes, lambda v: 0 < v <= 1, "peak levels in (0, 1]"),
        ]
        for name, values, valid, expected in checks:
            if not values or not all(valid(v) for v in values):
                raise ValueError(f"{name} must be one or more {expected}, got {list(values)}")
        if self.note_seconds <= 0:
            raise ValueError(f"note_seconds must be positive, got {self.note_seconds}")
        if not 8000 <= self.sample_rate <= 96000:
            raise ValueError(f"sample_rate must be 8000..96000 Hz (FluidSynth's range), got {self.sample_rate}")
        if not 1 <= self.velocity <= 127:
            raise ValueError(f"velocity must be 1..127, got {self.velocity}")
        named_amplitudes = {f"{a:05.2f}" for a in self.amplitudes}
        if len(set(self.pitches)) < len(self.pitches) or len(named_amplitudes) < len(self.amplitudes):
            raise ValueError("pitches or amplitudes repeat a value (amplitudes are named to 2 decimals): "
                             f"pitches {list(self.pitches)}, amplitudes {list(self.amplitudes)}")

    def file_count(self) -> int:
        """Return how many wavs the grid makes: programs x pitches x amplitudes."""
        return len(self.programs) * len(self.pitches) * len(self.amplitudes)


@dataclass(frozen=True)
class BuildResult:
    """What build_dataset left in `folder`: `files` wavs from `source` ("soundfont", "additive" or "existing"),
    and how they were made according to the folder's record (None where it has none, as in NSynth's own)."""

    folder: Path
    files: int
    source: str
    soundfont: Path | None = None
    made_with: str | None = None


def file_name(inst_id: int, pitch: float, amplitude: float) -> str:
    """Return the wav name carrying the three parameters, e.g. nsynth_instID02.00_p76.00_a00.30.wav."""
    return f"nsynth_instID{inst_id:05.2f}_p{pitch:05.2f}_a{amplitude:05.2f}.wav"


def find_soundfont(explicit: str | None = None) -> Path | None:
    """Return the SoundFont to use: `explicit` (which must exist), else the first installed one, else None."""
    if explicit is not None:
        path = Path(explicit).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"SoundFont {path} (--soundfont) does not exist; give the path of a .sf2 file")
        return path
    return next((Path(p) for p in SOUNDFONT_PATHS if Path(p).is_file()), None)


def scale_to_peak(note: np.ndarray, amplitude: float) -> np.ndarray:
    """Return the note scaled so its largest absolute sample equals `amplitude`, as float32."""
    peak = np.max(np.abs(note))
    if peak == 0:
        raise ValueError("the note is silent, so no level can be imposed on it")
    return (note * (amplitude / peak)).astype(np.float32)


def _check_fallback_programs(programs: Iterable[int]) -> None:
    unknown = [p for p in programs if p not in FALLBACK_TIMBRES]
    if unknown:
        raise ValueError(f"the additive fallback knows only GM programs {FALLBACK_TIMBRES}, not {unknown}; "
                         f"for other instruments {INSTALL_HINT}")


def harmonic_amplitudes(program: int, count: int) -> np.ndarray:
    """Return the additive fallback's amplitudes of harmonics 1..count for a GM program it knows."""
    _check_fallback_programs([program])
    k = np.arange(1, count + 1, dtype=np.float64)
    if FALLBACK_TIMBRES[program] == "clarinet":
        # A cylindrical bore: odd harmonics falling as 1/k, even ones barely there.
        return np.where(k % 2 == 1, 1.0, 0.03) / k
    # Brass: every harmonic, the strongest around the 2nd-3rd, a slow roll-off that makes it bright.
    return k * np.exp(-k / 2.5)


def additive_note(program: int, pitch: int, seconds: float, sample_rate: int) -> np.ndarray:
    """Return a steady additive-synthesis note (slight vibrato, breath noise), deterministic per program and pitch."""
    rng = np.random.default_rng([program, pitch])
    n = int(round(seconds * sample_rate))
    t = np.arange(n) / sample_rate
    f0 = 440.0 * 2.0 ** ((pitch - 69) / 12)
    vibrato_cents = VIBRATO_CENTS * np.sin(2 * np.pi * 5.0 * t + rng.uniform(0, 2 * np.pi))
    phase = 2 * np.pi * np.cumsum(f0 * 2.0 ** (vibrato_cents / 1200)) / sample_rate
    # Keep every harmonic below Nyquist even at the top of the vibrato, so nothing aliases.
    count = max(int(0.45 * sample_rate / (f0 * 2.0 ** (VIBRATO_CENTS / 1200))), 1)
    amplitudes = harmonic_amplitudes(program, count)
    offsets = rng.uniform(0, 2 * np.pi, count)
    tone = sum(a * np.sin(k * phase + o) for k, (a, o) in enumerate(zip(amplitudes, offsets), start=1))
    breath = np.diff(rng.standard_normal(n + 1))  # differenced white noise: a hiss tilted to the highs
    return tone + 0.02 * np.sqrt(np.mean(tone**2)) * breath


def _load_fluidsynth() -> ModuleType | None:
    try:
        import fluidsynth
    except (ImportError, OSError):
        return None
    return fluidsynth


def soundfont_notes(fluidsynth: ModuleType, soundfont: Path, notes: Iterable[Note], seconds: float, sample_rate: int,
                    velocity: int, whole: bool = False) -> Iterator[tuple[Note, np.ndarray]]:
    """Yield (note, mono middle `seconds` of the held note) for each note, rendered by FluidSynth; with `whole`, the
    note from its note-on, held `seconds`, and its RELEASE_SECONDS of release after the note-off."""
    # Reverb and chorus off: a dry note whose level and pitch are the instrument's alone, rendered the same each time.
    synth = fluidsynth.Synth(gain=1.0, samplerate=float(sample_rate),
                             **{"synth.reverb.active": 0, "synth.chorus.active": 0})
    try:
        font = synth.sfload(str(soundfont))
        if font < 0:
            raise ValueError(f"FluidSynth could not load the SoundFont {soundfont}; check that it is a valid .sf2")
        margin = int(round(MARGIN_SECONDS * sample_rate))
        length = int(round(seconds * sample_rate))
        for note in notes:
            _, program, pitch = note
            if synth.program_select(0, font, 0, int(program) - 1) != 0:
                raise ValueError(f"SoundFont {soundfont} has no bank-0 preset for GM program {program}")
            synth.noteon(0, int(pitch), velocity)
            if whole:
                held = synth.get_samples(length)
                synth.noteoff(0, int(pitch))
                stereo = np.concatenate([held, synth.get_samples(int(round(RELEASE_SECONDS * sample_rate)))])
                stereo = stereo.reshape(-1, 2)
            else:
                stereo = synth.get_samples(length + 2 * margin).reshape(-1, 2)[margin:margin + length]
            synth.all_sounds_off(0)
            if np.abs(stereo.astype(np.int32)).max() >= 32767:
                raise ValueError(f"GM program {program}, pitch {pitch} clipped in FluidSynth; lower --velocity")
            yield note, stereo.mean(axis=1) / 32768.0
    finally:
        synth.delete()


def _additive_notes(notes: Iterable[Note], seconds: float, sample_rate: int,
                    whole: bool = False) -> Iterator[tuple[Note, np.ndarray]]:
    for note in notes:
        if not whole:
            yield note, additive_note(note[1], note[2], seconds, sample_rate)
            continue
        audio = additive_note(note[1], note[2], seconds + RELEASE_SECONDS, sample_rate)
        yield note, audio * whole_note_envelope(len(audio), seconds, sample_rate)


def whole_note_envelope(length: int, held_seconds: float, sample_rate: int) -> np.ndarray:
    """Return the additive fallback's whole-note gain: a linear attack, held, then a release falling 60 dB."""
    t = np.arange(length) / sample_rate
    attack = np.clip(t / ADDITIVE_ATTACK_SECONDS, 0.0, 1.0)
    release = np.where(t < held_seconds, 1.0, 10.0 ** (-3.0 * (t - held_seconds) / RELEASE_SECONDS))
    return attack * release


def _existing_wavs(folder: Path) -> list[Path]:
    return [p for p in folder.iterdir() if p.suffix.lower() == ".wav"] if folder.is_dir() else []


def _fluidsynth_and_soundfont(config: RenderConfig) -> tuple[ModuleType | None, Path | None]:
    if config.fallback:
        return None, None
    return _load_fluidsynth(), find_soundfont(config.soundfont)


def _write_record(folder: Path, source: str, soundfont: Path | None, config: RenderConfig) -> None:
    # Without output_dir: the record lives in that folder, and a moved folder would make the path wrong.
    settings = {k: v for k, v in asdict(config).items() if k != "output_dir"}
    record = {"source": source, "soundfont": str(soundfont) if soundfont else None, "config": settings}
    (folder / RECORD_NAME).write_text(json.dumps(record, indent=2) + "\n")


def read_record(folder: Path) -> dict | None:
    """Return the record of how a built folder's wavs were made, or None where the folder has none."""
    path = Path(folder) / RECORD_NAME
    if not path.is_file():
        return None
    try:
        record = read_json(path)
        return {"source": record["source"], "soundfont": record["soundfont"], "config": record["config"]}
    except (ValueError, KeyError, TypeError) as error:
        raise ValueError(f"{path} is not a record written by render_dataset ({error!r}); delete it (it only notes "
                         "how the wavs were made) or rebuild the folder") from None


def _reuse(folder: Path, wavs: int, config: RenderConfig) -> BuildResult:
    """Return the result of leaving an existing folder as it is, warning when its stand-in notes could now be real."""
    record = read_record(folder)
    if record is None:
        return BuildResult(folder, wavs, "existing")
    if record["source"] == "additive":
        fluidsynth, soundfont = _fluidsynth_and_soundfont(config)
        if fluidsynth is not None and soundfont is not None:
            warnings.warn(f"{folder} holds notes made by additive synthesis (see its {RECORD_NAME}), but FluidSynth "
                          f"and the SoundFont {soundfont} are now installed; for the real instruments delete {folder} "
                          "and build it again, or build into another --output_dir", stacklevel=3)
    soundfont = Path(record["soundfont"]) if record["soundfont"] else None
    return BuildResult(folder, wavs, "existing", soundfont, record["source"])


def build_dataset(config: RenderConfig | None = None,
                  progress: Callable[[list[Note]], Iterable[Note]] = iter) -> BuildResult:
    """Return what is in config.output_dir after rendering every note there, or leaving existing wavs untouched.

    The files are written into a hidden folder beside the output and renamed into place at the end, so an
    interrupted build leaves no folder that looks complete. `progress` wraps the list of notes (e.g. tqdm).
    """
    config = config or RenderConfig()
    output = Path(config.output_dir)
    existing = _existing_wavs(output)
    if existing:
        return _reuse(output, len(existing), config)
    if output.is_dir() and any(output.iterdir()):
        raise FileExistsError(f"{output} holds files but no wavs; empty it or choose another --output_dir")

    notes = [(inst_id, program, pitch) for inst_id, program in enumerate(config.programs, start=1)
             for pitch in config.pitches]
    fluidsynth, soundfont = _fluidsynth_and_soundfont(config)
    if fluidsynth is not None and soundfont is not None:
        rendered = soundfont_notes(fluidsynth, soundfont, progress(notes), config.note_seconds, config.sample_rate,
                                   config.velocity, config.whole_notes)
        source = "soundfont"
    else:
        if config.soundfont is not None and not config.fallback:
            raise ImportError(f"the FluidSynth library is not installed, so --soundfont cannot be used; "
                              f"{INSTALL_HINT}")
        _check_fallback_programs(config.programs)
        if not config.fallback:
            missing = "the FluidSynth library" if fluidsynth is None else "a General MIDI SoundFont"
            warnings.warn(f"{missing} was not found, so the notes are made by additive synthesis (a stand-in for "
                          f"the clarinet and trumpet); for the real instruments {INSTALL_HINT}", stacklevel=2)
        rendered = _additive_notes(progress(notes), config.note_seconds, config.sample_rate, config.whole_notes)
        source, soundfont = "additive", None

    output.parent.mkdir(parents=True, exist_ok=True)
    partial = output.with_name(f".{output.name}.partial-{secrets.token_hex(4)}")
    partial.mkdir()  # with the umask's mode, which the finished set keeps (tempfile.mkdtemp's would be 0700)
    try:
        for (inst_id, program, pitch), audio in rendered:
            try:
                normalized = scale_to_peak(audio, 1.0)
            except ValueError as error:
                raise ValueError(f"GM program {program}, pitch {pitch}: {error}; choose pitches it plays") from None
            for amplitude in config.amplitudes:
                sf.write(partial / file_name(inst_id, pitch, amplitude), normalized * np.float32(amplitude),
                         config.sample_rate, subtype="PCM_16")
        _write_record(partial, source, soundfont, config)
        if output.is_dir():
            output.rmdir()  # empty, checked above; a rename cannot replace a folder on every system
        os.replace(partial, output)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return BuildResult(output, config.file_count(), source, soundfont, source)


def _parse_args(argv: list[str] | None) -> RenderConfig:
    defaults = RenderConfig()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output_dir", default=defaults.output_dir,
                        help="folder to create; left untouched if it already holds wavs (default: %(default)s)")
    parser.add_argument("--soundfont", help=f"a .sf2 file (default: the first of {', '.join(SOUNDFONT_PATHS)})")
    parser.add_argument("--programs", type=int, nargs="+", default=defaults.programs, metavar="GM",
                        help="General MIDI programs counted from 1 (72 Clarinet, 57 Trumpet); instID 1, 2, ... "
                             "in this order (default: 72 57)")
    parser.add_argument("--pitch_range", type=int, nargs=2, metavar=("LOW", "HIGH"),
                        default=(defaults.pitches[0], defaults.pitches[-1]),
                        help="MIDI notes LOW..HIGH, both included (default: 64 76)")
    parser.add_argument("--amplitudes", type=float, nargs="+", default=defaults.amplitudes, metavar="A",
                        help="peak level of each file in (0, 1] (default: 0.1 0.2 ... 1.0)")
    parser.add_argument("--note_seconds", type=float, default=defaults.note_seconds,
                        help="length kept from the middle of each held note (default: %(default)s)")
    parser.add_argument("--sample_rate", type=int, default=defaults.sample_rate, help="(default: %(default)s)")
    parser.add_argument("--velocity", type=int, default=defaults.velocity, help="MIDI velocity (default: %(default)s)")
    parser.add_argument("--fallback", action="store_true",
                        help="make the notes by additive synthesis even where a SoundFont is installed")
    parser.add_argument("--whole_notes", action="store_true",
                        help="keep whole notes as NSynth ships them: attack, --note_seconds held, release to silence")
    args = parser.parse_args(argv)
    low, high = args.pitch_range
    if low > high:
        parser.error(f"--pitch_range {low} {high}: LOW must not exceed HIGH")
    return RenderConfig(output_dir=args.output_dir, programs=tuple(args.programs), pitches=tuple(range(low, high + 1)),
                        amplitudes=tuple(args.amplitudes), note_seconds=args.note_seconds,
                        sample_rate=args.sample_rate, soundfont=args.soundfont, fallback=args.fallback,
                        velocity=args.velocity, whole_notes=args.whole_notes)


def main(argv: list[str] | None = None) -> None:
    """Command line: build the data set and print where it is and how many files it holds."""
    from tqdm.auto import tqdm

    try:
        config = _parse_args(argv)
        result = build_dataset(config, lambda notes: tqdm(notes, desc="notes", unit="note"))
    except (ValueError, FileNotFoundError, FileExistsError, ImportError) as error:
        raise SystemExit(f"error: {error}") from None
    if result.source == "existing":
        print(f"{result.folder} already holds {result.files} wav files; left as they are "
              "(remove the folder to build it again)")
    via = {"soundfont": f"FluidSynth with {result.soundfont}", "additive": "additive synthesis"}.get(result.made_with)
    if result.source == "existing":
        via = f"existing files made by {via}" if via else "existing files"
    print(f"data set: {result.files} files in {result.folder} ({via})")


if __name__ == "__main__":
    main()
