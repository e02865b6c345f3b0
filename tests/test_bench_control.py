from bench.bench_control import DATASETS, VARIANTS, main, training_params
from model.gru_audio_model import RNN
from utils.training_config import configs_from_params


def test_benchmark_runs_end_to_end_on_a_tiny_budget(tmp_path, capsys):
    main(["--datasets", "double reeds", "--variants", "pitch-shift", "--budgets", "tiny", "--seeds", "0",
          "--sampling", "3:1.0", "1:1.0", "--output", str(tmp_path)])
    table = (tmp_path / "table.md").read_text()
    assert table.count("| double reeds | pitch-shift | tiny |") == 2  # one line per sampling setting
    assert "| double reeds | data files | - | - | 1 |" in table  # the floor: the data measured as the runs are
    assert "held-out median" in capsys.readouterr().out
    runs = list((tmp_path / "runs").iterdir())
    main(["--datasets", "double reeds", "--variants", "pitch-shift", "--budgets", "tiny", "--seeds", "0",
          "--sampling", "1:1.0", "8:0.9", "--output", str(tmp_path)])
    assert list((tmp_path / "runs").iterdir()) == runs  # kept runs are not trained again, only evaluated
    table = (tmp_path / "table.md").read_text()
    assert "| pitch-shift | tiny | 8:0.9 |" in table and "| 3:1 |" not in table
    capsys.readouterr()
    main(["--kept", "--output", str(tmp_path)])
    kept = capsys.readouterr().out
    assert all(f"| pitch-shift | tiny | {s} |" in kept for s in ("3:1", "1:1", "8:0.9"))  # every setting run so far


def test_every_variant_holds_out_two_pitches_and_keeps_the_budgets_samples_per_batch(tmp_path):
    for name, dataset in DATASETS.items():
        for variant in VARIANTS:
            params = training_params(dataset, tmp_path, variant, "quick", 0, tmp_path)
            data, model, train = configs_from_params(params)
            assert len(data.exclude["p"]) == 2 and data.parameter_specs["p"] == dataset.pitches
            assert data.sequence_length * train.batch_size == 256 * 64
            RNN(model)


def test_whole_notes_and_the_reference_recipe_run_end_to_end(tmp_path, capsys):
    main(["--datasets", "default", "--shapes", "whole", "--variants", "reference x3+cold+shift", "--budgets", "tiny",
          "--seeds", "0", "--output", str(tmp_path)])
    table = (tmp_path / "table.md").read_text()
    assert "| default (whole notes) | reference x3+cold+shift | tiny | 3:1 | 1 |" in table
    assert "silent notes" in table
    record = (tmp_path / "data" / "default__whole" / "rendered_with.json").read_text()
    assert '"whole_notes": true' in record
