import json
import os
import re
import stat
import warnings
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from audioDataLoader import render_dataset
from audioDataLoader.audio_dataset import AudioDatasetConfig, MuLawAudioDataset
from audioDataLoader.render_dataset import (
    RECORD_NAME,
    RenderConfig,
    build_dataset,
    file_name,
    find_soundfont,
    main,
    soundfont_notes,
)
from utils.pitch import cents_error, median_f0, midi_to_hz

HAS_SOUNDFONT = render_dataset._load_fluidsynth() is not None and find_soundfont() is not None
SMALL = {"pitches": (64, 76), "amplitudes": (0.5, 1.0), "note_seconds": 0.5}


def expected_names(config: RenderConfig) -> set[str]:
    return {file_name(i, p, a) for i in range(1, len(config.programs) + 1) for p in config.pitches
            for a in config.amplitudes}


def read(folder: Path, inst: int, pitch: int, amplitude: float) -> np.ndarray:
    audio, _ = sf.read(folder / file_name(inst, pitch, amplitude))
    return audio


def even_to_odd_db(audio: np.ndarray, sample_rate: int, f0: float) -> float:
    spectrum = np.abs(np.fft.rfft(audio * np.hanning(len(audio)))) ** 2
    freqs = np.fft.rfftfreq(len(audio), 1 / sample_rate)

    def energy(harmonics: range) -> float:
        return sum(spectrum[np.abs(freqs - k * f0) < f0 / 4].sum() for k in harmonics if k * f0 < sample_rate / 2)

    return 10 * np.log10(energy(range(2, 12, 2)) / energy(range(3, 13, 2)))


@pytest.fixture(scope="module", params=[
    pytest.param("soundfont", marks=pytest.mark.skipif(
        not HAS_SOUNDFONT, reason="no FluidSynth library or GM SoundFont: apt-get install libfluidsynth3 "
                                  "fluid-soundfont-gm")),
    "additive",
])
def full_set(request, tmp_path_factory) -> tuple[Path, RenderConfig]:
    """The default 260-file grid built once per source."""
    config = RenderConfig(output_dir=str(tmp_path_factory.mktemp(request.param) / "nsynth.64.76_sm"),
                          fallback=request.param == "additive")
    result = build_dataset(config)
    assert result.source == request.param
    return result.folder, config


def test_file_names_follow_the_original_format():
    assert file_name(2, 76, 0.3) == "nsynth_instID02.00_p76.00_a00.30.wav"


def test_default_grid_is_two_instruments_by_13_pitches_by_10_amplitudes(full_set):
    folder, config = full_set
    names = {p.name for p in folder.glob("*.wav")}
    assert len(names) == 260 == config.file_count()
    assert names == expected_names(config)
    assert {p.name for p in folder.iterdir()} == names | {RECORD_NAME}
    assert "nsynth_instID01.00_p64.00_a00.10.wav" in names and "nsynth_instID02.00_p76.00_a01.00.wav" in names


def test_every_file_is_2_5_seconds_of_16k_mono(full_set):
    folder, _ = full_set
    infos = [sf.info(path) for path in folder.glob("*.wav")]
    assert {(i.samplerate, i.channels, i.frames) for i in infos} == {(16000, 1, 40000)}


def test_default_parameter_specs_load_the_set_unchanged(full_set):
    folder, _ = full_set
    dataset = MuLawAudioDataset(AudioDatasetConfig(data_dir=str(folder)))
    assert len(dataset.files) == 260
    assert sorted(set(dataset.raw_parameters[:, 0])) == [1.0, 2.0]
    assert dataset.raw_parameters[:, 1].min() == pytest.approx(0.1) and dataset.raw_parameters[:, 1].max() == 1.0
    assert sorted(set(dataset.raw_parameters[:, 2])) == list(range(64, 77))


def test_peak_of_each_file_is_its_amplitude_and_levels_are_proportional(full_set):
    folder, config = full_set
    for inst in (1, 2):
        for pitch in config.pitches:
            loudest = read(folder, inst, pitch, 1.0)
            for amplitude in config.amplitudes:
                audio = read(folder, inst, pitch, amplitude)
                assert np.max(np.abs(audio)) == pytest.approx(amplitude, abs=2e-4)
                assert np.allclose(audio, amplitude * loudest, atol=2e-4)


def test_every_note_sounds_at_its_midi_pitch_within_20_cents(full_set):
    folder, config = full_set
    for inst in (1, 2):
        for pitch in config.pitches:
            error = cents_error(median_f0(read(folder, inst, pitch, 1.0), 16000), midi_to_hz(pitch))
            assert abs(error) < 20, f"instID {inst} pitch {pitch} is {error:.1f} cents off"


def test_inst_1_is_the_clarinet_with_weaker_even_harmonics_than_the_trumpet(full_set):
    folder, config = full_set
    for pitch in config.pitches:
        clarinet, trumpet = (even_to_odd_db(read(folder, inst, pitch, 1.0), 16000, midi_to_hz(pitch))
                             for inst in (1, 2))
        assert clarinet < trumpet - 2, f"pitch {pitch}: clarinet {clarinet:.1f} dB, trumpet {trumpet:.1f} dB"


@pytest.mark.parametrize("fallback", [pytest.param(False, marks=pytest.mark.skipif(
    not HAS_SOUNDFONT, reason="no FluidSynth library or GM SoundFont")), True])
def test_two_builds_write_identical_files(tmp_path, fallback):
    first, second = (build_dataset(RenderConfig(output_dir=str(tmp_path / name), fallback=fallback, **SMALL)).folder
                     for name in ("first", "second"))
    for path in first.iterdir():
        assert path.read_bytes() == (second / path.name).read_bytes()


def test_gm_program_numbers_count_from_1_when_selecting_presets():
    selected = []

    class FakeSynth:
        def __init__(self, **settings):
            pass

        def sfload(self, path):
            return 1

        def program_select(self, channel, font, bank, preset):
            selected.append((bank, preset))
            return 0

        def noteon(self, channel, key, velocity):
            pass

        def get_samples(self, n):
            return np.ones(2 * n, dtype=np.int16)

        def all_sounds_off(self, channel):
            pass

        def delete(self):
            pass

    fake = type("FakeFluidsynth", (), {"Synth": FakeSynth})
    notes = list(soundfont_notes(fake, Path("gm.sf2"), [(1, 72, 64), (2, 57, 64)], 0.1, 16000, 100))
    assert selected == [(0, 71), (0, 56)]
    assert [len(audio) for _, audio in notes] == [1600, 1600]


@pytest.mark.parametrize("missing", ["SOUNDFONT_PATHS", "_load_fluidsynth"])
def test_without_fluidsynth_or_a_soundfont_the_additive_fallback_says_how_to_get_them(tmp_path, monkeypatch, missing):
    monkeypatch.setattr(render_dataset, missing, () if missing == "SOUNDFONT_PATHS" else lambda: None)
    config = RenderConfig(output_dir=str(tmp_path / "set"), **SMALL)
    with pytest.warns(UserWarning, match="apt-get install fluid-soundfont-gm libfluidsynth3"):
        result = build_dataset(config)
    assert result.source == "additive"
    assert {p.name for p in result.folder.iterdir()} == expected_names(config) | {RECORD_NAME}


def test_existing_wavs_are_left_as_they_are(tmp_path):
    folder = tmp_path / "set"
    folder.mkdir()
    original = folder / "nsynth_instID01.00_p64.00_a00.50.wav"
    sf.write(original, np.full(100, 0.25), 16000)
    before = original.read_bytes()
    result = build_dataset(RenderConfig(output_dir=str(folder), fallback=True, **SMALL))
    assert (result.source, result.files) == ("existing", 1)
    assert [p.name for p in folder.iterdir()] == [original.name] and original.read_bytes() == before


def test_the_record_says_how_the_set_was_made_and_the_dataset_reads_only_the_wavs(full_set):
    folder, config = full_set
    record = json.loads((folder / RECORD_NAME).read_text())
    if config.fallback:
        assert (record["source"], record["soundfont"]) == ("additive", None)
    else:
        assert (record["source"], record["soundfont"]) == ("soundfont", str(find_soundfont()))
    assert record["config"]["pitches"] == list(config.pitches) and "output_dir" not in record["config"]
    assert len(MuLawAudioDataset(AudioDatasetConfig(data_dir=str(folder))).files) == 260


def pretend_fluidsynth_and_a_soundfont_are_installed(monkeypatch, folder: Path) -> Path:
    font = folder / "gm.sf2"
    font.write_bytes(b"")
    monkeypatch.setattr(render_dataset, "_load_fluidsynth", lambda: object())
    monkeypatch.setattr(render_dataset, "SOUNDFONT_PATHS", (str(font),))
    return font


def test_an_additive_set_reused_once_a_soundfont_is_found_says_how_to_rebuild(tmp_path, monkeypatch, capsys):
    folder = tmp_path / "set"
    build_dataset(RenderConfig(output_dir=str(folder), fallback=True, **SMALL))
    before = sorted((p.name, p.read_bytes()) for p in folder.iterdir())
    font = pretend_fluidsynth_and_a_soundfont_are_installed(monkeypatch, tmp_path)
    expected = f"additive synthesis.*{re.escape(str(font))}.*delete {re.escape(str(folder))}.*--output_dir"
    with pytest.warns(UserWarning, match=expected):
        main(["--output_dir", str(folder)])
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last == f"data set: 8 files in {folder} (existing files made by additive synthesis)"
    assert sorted((p.name, p.read_bytes()) for p in folder.iterdir()) == before


def test_a_folder_without_a_record_like_nsynths_own_is_reused_silently(tmp_path, monkeypatch):
    folder = tmp_path / "nsynth"
    folder.mkdir()
    sf.write(folder / "nsynth_instID01.00_p64.00_a00.50.wav", np.full(100, 0.25), 16000)
    pretend_fluidsynth_and_a_soundfont_are_installed(monkeypatch, tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = build_dataset(RenderConfig(output_dir=str(folder)))
    assert (result.source, result.made_with) == ("existing", None)
    assert [p.name for p in folder.iterdir()] == ["nsynth_instID01.00_p64.00_a00.50.wav"]


def test_an_unreadable_record_is_named_with_what_to_do(tmp_path):
    folder = tmp_path / "set"
    build_dataset(RenderConfig(output_dir=str(folder), fallback=True, **SMALL))
    (folder / RECORD_NAME).write_text("{")
    with pytest.raises(ValueError, match=f"{RECORD_NAME} is not a record.*delete it"):
        build_dataset(RenderConfig(output_dir=str(folder), fallback=True, **SMALL))


def test_a_folder_of_other_files_is_not_overwritten(tmp_path):
    (tmp_path / "set").mkdir()
    (tmp_path / "set" / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="holds files but no wavs"):
        build_dataset(RenderConfig(output_dir=str(tmp_path / "set"), fallback=True, **SMALL))


def test_an_empty_output_folder_is_filled(tmp_path):
    (tmp_path / "set").mkdir()
    result = build_dataset(RenderConfig(output_dir=str(tmp_path / "set"), fallback=True, **SMALL))
    assert len(list(result.folder.glob("*.wav"))) == result.files == 8


def test_an_interrupted_build_leaves_neither_the_folder_nor_a_partial_one(tmp_path):
    def interrupt_after_one(notes):
        yield notes[0]
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        build_dataset(RenderConfig(output_dir=str(tmp_path / "set"), fallback=True, **SMALL), interrupt_after_one)
    assert list(tmp_path.iterdir()) == []


def test_a_soundfont_without_the_fluidsynth_library_is_refused_with_the_install_command(tmp_path, monkeypatch):
    monkeypatch.setattr(render_dataset, "_load_fluidsynth", lambda: None)
    font = tmp_path / "gm.sf2"
    font.write_bytes(b"")
    with pytest.raises(ImportError, match="apt-get install"):
        build_dataset(RenderConfig(output_dir=str(tmp_path / "set"), soundfont=str(font)))


def test_a_missing_soundfont_file_is_named_in_the_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.sf2"):
        build_dataset(RenderConfig(output_dir=str(tmp_path / "set"), soundfont=str(tmp_path / "nope.sf2")))


def test_fallback_refuses_programs_it_cannot_imitate_before_writing(tmp_path):
    with pytest.raises(ValueError, match="fallback knows only GM programs"):
        build_dataset(RenderConfig(output_dir=str(tmp_path / "set"), programs=(72, 1), fallback=True))
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("settings, message", [
    ({"programs": (0,)}, "programs"),
    ({"pitches": (64.5,)}, "pitches"),
    ({"amplitudes": (0.0, 0.5)}, "amplitudes"),
    ({"amplitudes": (0.1, 0.101)}, "2 decimals"),
    ({"note_seconds": 0}, "note_seconds"),
    ({"sample_rate": 4000}, "sample_rate"),
])
def test_bad_settings_are_refused_naming_the_setting(settings, message):
    with pytest.raises(ValueError, match=message):
        RenderConfig(**settings)


def test_command_line_builds_a_custom_grid_and_reports_where(tmp_path, capsys):
    folder = tmp_path / "mine"
    main(["--output_dir", str(folder), "--fallback", "--programs", "57", "--pitch_range", "70", "72",
          "--amplitudes", "0.25", "1", "--note_seconds", "0.5", "--sample_rate", "8000"])
    assert capsys.readouterr().out.strip().splitlines()[-1] == f"data set: 6 files in {folder} (additive synthesis)"
    assert sorted(p.name for p in folder.iterdir())[0] == "nsynth_instID01.00_p70.00_a00.25.wav"
    assert sf.info(folder / "nsynth_instID01.00_p72.00_a01.00.wav").frames == 4000


def test_command_line_help_exits_cleanly(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0 and "--soundfont" in capsys.readouterr().out


def test_the_built_folder_gets_the_mode_an_ordinary_folder_gets(tmp_path):
    previous = os.umask(0o022)
    try:
        result = build_dataset(RenderConfig(output_dir=str(tmp_path / "set"), fallback=True, **SMALL))
        (tmp_path / "plain").mkdir()
    finally:
        os.umask(previous)
    assert stat.S_IMODE(result.folder.stat().st_mode) == stat.S_IMODE((tmp_path / "plain").stat().st_mode) == 0o755


@pytest.mark.parametrize("fallback", [pytest.param(False, marks=pytest.mark.skipif(
    not HAS_SOUNDFONT, reason="no FluidSynth library or GM SoundFont")), True])
def test_whole_notes_start_with_their_attack_and_end_in_silence(tmp_path, fallback):
    config = RenderConfig(output_dir=str(tmp_path / "whole"), fallback=fallback, whole_notes=True,
                          pitches=(64,), amplitudes=(1.0,), note_seconds=1.0)
    audio = read(build_dataset(config).folder, 1, 64, 1.0)
    sample_rate = config.sample_rate
    assert len(audio) == int((1.0 + render_dataset.RELEASE_SECONDS) * sample_rate)  # held, then the release
    envelope = [np.sqrt(np.mean(audio[i:i + 160] ** 2)) for i in range(0, len(audio) - 160, 160)]  # 10 ms frames
    held = np.median(envelope[20:90])
    assert envelope[0] < 0.5 * held  # the attack rises from the note-on
    assert envelope[-1] < 0.01 * held  # the release ends in silence (-40 dB)
    middle = read(build_dataset(RenderConfig(**{**config.__dict__, "output_dir": str(tmp_path / "middle"),
                                                "whole_notes": False})).folder, 1, 64, 1.0)
    assert len(middle) == sample_rate and np.sqrt(np.mean(middle[:160] ** 2)) > 0.5 * held  # no attack
