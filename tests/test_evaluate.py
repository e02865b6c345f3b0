"""evaluate.py: the control measures on tones of known pitch, level and timbre; the held-out option; a tiny run
evaluated end to end from the command line and from Evaluate.ipynb."""
import csv
import json

import numpy as np
import papermill
import pytest
import soundfile as sf

from audioDataLoader.audio_dataset import AudioDatasetConfig, MuLawAudioDataset
from evaluate import main
from evaluation.measures import (
    NearestCentroid,
    f0_range,
    glide_track,
    harmonic_features,
    measure_note,
    rms_db,
    spearman,
)
from evaluation.plots import PLOTS
from evaluation.run import (
    STAGES,
    EvaluationConfig,
    Reference,
    evaluate_run,
    level_rank_correlation,
    summary_row,
    value_group,
)
from export import export
from tests.harness.run_folders import ROOT, TINY_SPECS, write_tone
from train import train
from utils.pitch import midi_to_hz

SR = 16000
SEARCH = f0_range(np.array([64.0, 76.0]))


def tone(midi: np.ndarray | float, amplitude: float = 0.5, odd_only: bool = False, seconds: float = 0.5) -> np.ndarray:
    """Return a harmonic tone whose pitch follows midi (a constant, or one value per sample)."""
    n = int(seconds * SR)
    frequency = np.broadcast_to(midi_to_hz(midi), (n,))
    phase = 2 * np.pi * np.cumsum(frequency) / SR
    harmonics = range(1, 8, 2) if odd_only else range(1, 8)
    audio = sum(np.sin(k * phase) / k for k in harmonics)
    return amplitude * audio / np.abs(audio).max()


def test_pitch_measure_finds_a_30_cent_detune():
    note = measure_note(tone(70.3), SR, requested_midi=70.0, search=SEARCH)
    assert note.voiced_fraction == 1.0
    assert 100 * (note.f0_midi - 70.0) == pytest.approx(30.0, abs=3.0)


def test_glide_track_follows_a_sweep_within_a_few_cents():
    target = np.linspace(64.0, 76.0, SR)
    track = glide_track(tone(target, seconds=1.0), SR, target, SEARCH, start=800)
    assert track.times[0] > 800 / SR and np.isfinite(track.f0_midi).all()
    assert np.median(np.abs(track.cents())) < 5.0


def test_noise_has_no_pitch():
    noise = np.random.default_rng(0).uniform(-0.5, 0.5, SR // 2)
    note = measure_note(noise, SR, requested_midi=70.0, search=SEARCH)
    assert note.voiced_fraction < 0.2


def test_a_note_sounding_in_less_than_half_its_frames_is_counted_silent_and_its_pitch_left_out():
    """A note that never starts shows in the summary's silent column; the pitch medians cannot hide it."""
    sounding, third = tone(70.0), tone(70.0)
    third[len(third) // 3:] = 0.0  # a note that dies after a third of its length
    notes = [measure_note(audio, SR, 70.0, SEARCH) for audio in (sounding, third, np.zeros(SR // 2))]
    features = np.stack([tone(70.0, odd_only=odd)[:4096] for odd in (True, False)])
    reference = Reference(["instID", "a", "p"], {"instID": np.array([1.0, 2.0]), "a": np.array([0.5]),
                                                 "p": np.array([70.0])}, {},
                          {1.0: (np.array([0.5]), np.array([-10.0]))},
                          NearestCentroid.fit(np.stack([harmonic_features(f, SR, midi_to_hz(70.0)) for f in features]),
                                              np.array([1.0, 2.0])), SEARCH)
    config = EvaluationConfig()
    rows = reference.rows("generated", np.array([[1.0, 0.5, 70.0]] * 3), notes, config)
    assert [row["silent"] for row in rows] == [False, True, True]
    assert np.isfinite(rows[0]["cents_error"]) and np.isnan(rows[1]["cents_error"]) and np.isnan(rows[2]["cents_error"])
    summary = summary_row(rows, config, np.array([1.0, 2.0]))
    assert summary["notes"] == 3 and summary["silent notes"] == 2
    assert summary["pitch error median (cents)"] == pytest.approx(abs(rows[0]["cents_error"]))


def test_rms_level_ordering_is_detected():
    amplitudes = [0.1, 0.3, 0.5, 0.9]
    levels = [rms_db(tone(67.0, a)) for a in amplitudes]
    assert levels[0] == pytest.approx(levels[-1] - 20 * np.log10(9), abs=0.01)
    assert spearman(amplitudes, levels) == pytest.approx(1.0)
    assert spearman(amplitudes, levels[::-1]) == pytest.approx(-1.0)
    assert rms_db(np.zeros(100)) < -150


def test_spearman_gives_tied_values_their_mean_rank():
    assert spearman([1, 2, 2, 3], [10, 20, 20, 30]) == pytest.approx(1.0)
    assert np.isnan(spearman([1, 1, 1], [1, 2, 3]))


def test_level_rank_correlation_compares_amplitudes_within_each_instrument_and_pitch():
    config = EvaluationConfig()
    # Pitch 76 is 30 dB quieter at every amplitude: pooled ranks would mix up, per-pitch ranks do not.
    rows = [{"instID": 1.0, "p": p, "a": a, "level_db": 20 * np.log10(a) - (30 if p == 76 else 0)}
            for p in (64.0, 76.0) for a in (0.2, 0.5, 0.8)]
    assert level_rank_correlation(rows, config) == pytest.approx(1.0)
    assert spearman([r["a"] for r in rows], [r["level_db"] for r in rows]) < 0.9


def test_instrument_classifier_separates_odd_harmonic_from_all_harmonic_tones():
    def features(midi, amplitude, odd_only):
        return harmonic_features(tone(midi, amplitude, odd_only), SR, float(midi_to_hz(midi)))

    train_set = [(m, a, odd) for m in (64, 68, 72, 76) for a in (0.2, 0.8) for odd in (True, False)]
    classifier = NearestCentroid.fit(np.stack([features(*s) for s in train_set]),
                                     np.array([1.0 if odd else 2.0 for _, _, odd in train_set]))
    test_set = [(m, 0.5, odd) for m in (65.5, 70.25, 74) for odd in (True, False)]
    heard = classifier.predict(np.stack([features(*s) for s in test_set]))
    assert heard.tolist() == [1.0 if odd else 2.0 for _, _, odd in test_set]


def test_notes_are_grouped_held_out_before_between_before_trained():
    data_values = {"p": np.array([64.0, 67.0, 76.0]), "a": np.array([0.3, 0.9])}
    exclude = {"p": [67.0]}
    assert value_group({"p": 64.0, "a": 0.3}, data_values, exclude) == "trained"
    assert value_group({"p": 67.0, "a": 0.3}, data_values, exclude) == "held-out"
    assert value_group({"p": 67.0, "a": 0.5}, data_values, exclude) == "held-out"
    assert value_group({"p": 64.5, "a": 0.3}, data_values, exclude) == "between"
    assert value_group({"p": 64.0, "a": 0.6}, data_values, exclude) == "between"


def test_exclude_leaves_out_exactly_the_files_with_the_chosen_values(tmp_path):
    names = [f"nsynth_instID{i:05.2f}_p{p:05.2f}_a{a:05.2f}.wav" for i in (1, 2) for p in (64, 67, 71, 76)
             for a in (0.3, 0.9)]
    for name in names:
        sf.write(tmp_path / name, np.zeros(100, dtype=np.float32), SR)
    exclude = {"p": [67, 71], "a": [0.9]}
    dataset = MuLawAudioDataset(AudioDatasetConfig(data_dir=str(tmp_path), sequence_length=16,
                                                   parameter_specs=TINY_SPECS, exclude=exclude))
    kept = {name for name in names if "_p67" not in name and "_p71" not in name and "_a00.90" not in name}
    assert {path.name for path in dataset.files} == kept and len(kept) == 4


@pytest.fixture(scope="module")
def tiny_run(tiny_data_dir, tmp_path_factory):
    """A run trained for two batches on the tiny tones with pitch 76 held out."""
    return train({"datadir": str(tiny_data_dir), "props": TINY_SPECS, "exclude": {"p": [76.0]}, "num_epochs": 1,
                  "batches_per_epoch": 2, "batch_size": 4, "seqLen": 32,
                  "savemodeldir": str(tmp_path_factory.mktemp("output"))})


TINY_OPTIONS = {"seconds": 0.1, "settle_seconds": 0.02, "pitch_step": 6.0, "amplitudes": [0.3, 0.9],
                "glide_seconds": 0.15}
TINY_ARGV = [arg for name, value in TINY_OPTIONS.items()
             for arg in [f"--{name}", *map(str, value if isinstance(value, list) else [value])]]
OTHER_NAMES_ARGV = ["--instrument", "timbre", "--pitch", "note", "--amplitude", "level"]


def test_command_line_writes_tables_and_plots_with_trained_held_out_and_between_rows(tiny_run, capsys):
    main(["--run_directory", str(tiny_run), "--seed", "1", *TINY_ARGV])
    folder = tiny_run / "evaluation"
    for name in ["summary.csv", "summary.md", "notes.csv", "evaluation_config.json", *PLOTS]:
        assert (folder / name).stat().st_size > 0, name
    with open(folder / "summary.csv") as f:
        summary = list(csv.DictReader(f))
    groups = {(row["source"], row["group"]) for row in summary}
    assert {("generated", "trained"), ("generated", "held-out"), ("generated", "between"),
            ("data", "trained"), ("data", "held-out"), ("generated", "glide instID=1")} <= groups
    data_floor = [row for row in summary if row["source"] == "data"]
    assert all(float(row["instrument accuracy"]) == 1.0 and float(row["pitch error p90 (cents)"]) < 10
               for row in data_floor)
    with open(folder / "notes.csv") as f:
        generated = [row for row in csv.DictReader(f) if row["source"] == "generated"]
    assert len(generated) == 2 * 3 * 2  # instruments x pitches 64, 70, 76 x amplitudes
    assert json.loads((folder / "evaluation_config.json").read_text())["seed"] == 1
    assert "| data | held-out |" in capsys.readouterr().out


def test_a_model_file_is_evaluated_against_data_given_separately_with_its_held_out_values(tiny_run, tiny_data_dir,
                                                                                         tmp_path, monkeypatch):
    model_file = export(tiny_run, tmp_path / "tiny.safetensors")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit, match="give the data's folder \\(evaluate.py --data_dir\\)"):
        main(["--model", str(model_file), "--data_dir", "elsewhere", *TINY_ARGV])
    main(["--model", str(model_file), "--data_dir", str(tiny_data_dir), *TINY_ARGV])
    with open(tmp_path / "output" / "tiny" / "evaluation" / "summary.csv") as f:
        groups = {(row["source"], row["group"]) for row in csv.DictReader(f)}
    assert {("generated", "trained"), ("generated", "held-out"), ("data", "held-out")} <= groups


def test_command_line_names_its_options_and_the_config_fields_when_the_names_do_not_match(tiny_run):
    with pytest.raises(SystemExit, match=r"--instrument NAME --pitch NAME --amplitude NAME .*"
                                         r"EvaluationConfig\(instrument=\.\.\., pitch=\.\.\., amplitude=\.\.\.\)"):
        main(["--run_directory", str(tiny_run), *TINY_ARGV, *OTHER_NAMES_ARGV])


@pytest.fixture(scope="module")
def other_names_run(tmp_path_factory):
    """A run trained for two batches on tones named by timbre, note and level (in that file-name order)."""
    folder = tmp_path_factory.mktemp("other_names")
    for timbre in (1, 2):
        for note in (64, 76):
            for level in (0.3, 0.9):
                write_tone(folder / f"tone_timbre{timbre}_note{note}_level{level}.wav", note, level, bright=timbre == 2)
    return train({"datadir": str(folder), "props": {"level": (0, 1), "note": (64, 76), "timbre": (1, 2)},
                  "num_epochs": 1, "batches_per_epoch": 2, "batch_size": 4, "seqLen": 32,
                  "savemodeldir": str(tmp_path_factory.mktemp("output"))})


def test_command_line_evaluates_a_run_whose_parameters_have_other_names(other_names_run):
    main(["--run_directory", str(other_names_run), *TINY_ARGV, *OTHER_NAMES_ARGV])
    with open(other_names_run / "evaluation" / "notes.csv") as f:
        generated = [row for row in csv.DictReader(f) if row["source"] == "generated"]
    assert {(float(r["timbre"]), float(r["note"]), float(r["level"])) for r in generated} == {
        (t, n, lv) for t in (1.0, 2.0) for n in (64.0, 70.0, 76.0) for lv in (0.3, 0.9)}
    config = json.loads((other_names_run / "evaluation" / "evaluation_config.json").read_text())
    assert (config["instrument"], config["pitch"], config["amplitude"]) == ("timbre", "note", "level")


def test_evaluate_notebook_is_committed_with_outputs_cleared():
    notebook = json.loads((ROOT / "Evaluate.ipynb").read_text())
    assert all(not cell.get("outputs") for cell in notebook["cells"] if cell["cell_type"] == "code")
    assert any("parameters" in cell["metadata"].get("tags", []) for cell in notebook["cells"])


def test_evaluate_run_reports_each_stage_as_it_ends(tiny_run):
    stages = []
    evaluate_run(tiny_run, EvaluationConfig(**TINY_OPTIONS), progress=stages.append)
    assert stages == list(STAGES)


def test_evaluate_notebook_runs_on_a_tiny_run(tiny_run, tmp_path):
    executed = tmp_path / "Evaluate.ipynb"
    papermill.execute_notebook(str(ROOT / "Evaluate.ipynb"), str(executed), kernel_name="python3", cwd=str(ROOT),
                               parameters={"run_directory": str(tiny_run), **TINY_OPTIONS}, progress_bar=False)
    outputs = [out for cell in json.loads(executed.read_text())["cells"] for out in cell.get("outputs", [])]
    assert sum("image/png" in out.get("data", {}) for out in outputs) >= len(PLOTS)
    assert any("text/markdown" in out.get("data", {}) for out in outputs)
    assert any("application/vnd.jupyter.widget-view+json" in out.get("data", {}) for out in outputs)  # the progress bar
