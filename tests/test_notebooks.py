"""Train.ipynb then Inference.ipynb, top to bottom, headless, with a tiny configuration; Train.ipynb's example
window against the network input it shows."""
import json

import matplotlib.pyplot as plt
import numpy as np
import papermill
import pytest

from audioDataLoader.audio_dataset import AudioDatasetConfig, MuLawAudioDataset, read_mono
from audioDataLoader.mulaw import mu_law_encode
from tests.harness.run_folders import ROOT, TINY_SPECS


def execute(name: str, output_dir, parameters: dict, cwd=ROOT) -> dict:
    """Run a notebook with papermill (in `cwd`) and return the executed notebook as JSON."""
    executed = output_dir / name
    papermill.execute_notebook(str(ROOT / name), str(executed), parameters=parameters, kernel_name="python3",
                               cwd=str(cwd), progress_bar=False)
    return json.loads(executed.read_text())


def outputs_of(notebook: dict, mime: str) -> int:
    return sum(mime in out.get("data", {}) for cell in notebook["cells"] for out in cell.get("outputs", []))


def widget_output_kinds(notebook: dict) -> list[str]:
    """Return what the notebook's Output widget holds: "stream", or the richest type of each display."""
    states = notebook["metadata"]["widgets"]["application/vnd.jupyter.widget-state+json"]["state"].values()
    (output,) = [m["state"]["outputs"] for m in states if m["model_name"] == "OutputModel"]
    return [out["output_type"] if out["output_type"] == "stream" else next(iter(out["data"])) for out in output]


@pytest.mark.parametrize("name", ["Train.ipynb", "Inference.ipynb"])
def test_notebooks_are_committed_with_outputs_cleared(name):
    notebook = json.loads((ROOT / name).read_text())
    assert all(not cell.get("outputs") for cell in notebook["cells"] if cell["cell_type"] == "code")
    assert any("parameters" in cell["metadata"].get("tags", []) for cell in notebook["cells"])


def test_train_then_inference_notebooks_run_end_to_end(tiny_data_dir, tmp_path):
    train_nb = execute("Train.ipynb", tmp_path, {
        "datadir": str(tiny_data_dir), "props": {k: list(v) for k, v in TINY_SPECS.items()},  # papermill turns tuples into strings
        "num_epochs": 2, "batches_per_epoch": 2,
        "batch_size": 4, "seqLen": 32, "savemodeldir": str(tmp_path / "output"), "savemodel_interval": 1,
        "vis_interval": 1, "vis_seconds": 0.02})
    runs = list((tmp_path / "output").iterdir())
    assert len(runs) == 1 and (runs[0] / "checkpoints" / "last_checkpoint.pt").is_file()
    assert outputs_of(train_nb, "text/html") >= 2  # the data table and an audio player per example
    assert outputs_of(train_nb, "image/png") >= 3  # the window, the examples, the loss curve

    inference_nb = execute("Inference.ipynb", tmp_path, {"run_directory": str(runs[0]), "length_seconds": 0.05})
    assert outputs_of(inference_nb, "image/png") >= 5  # both examples (conditioning and audio), the stream
    assert outputs_of(inference_nb, "application/vnd.jupyter.widget-view+json") == 2  # live play, the sliders
    assert widget_output_kinds(inference_nb) == ["stream", "image/png", "text/html"]  # the first slider example


def test_inference_notebook_plays_the_shipped_default_where_no_run_is_trained_and_says_so(tmp_path):
    notebook = execute("Inference.ipynb", tmp_path, {"length_seconds": 0.05}, cwd=tmp_path)  # no output/ there
    said = "".join("".join(out.get("text", "")) for cell in notebook["cells"] for out in cell.get("outputs", []))
    assert "no trained run under output/: playing the shipped default model" in said
    assert "clarinet_trumpet.safetensors" in said and outputs_of(notebook, "image/png") >= 5


def test_train_notebook_window_plots_the_same_samples_as_the_network_input(tiny_data_dir):
    # The cell alone, on a data set made here without noise, so the two plotted lines can be compared sample by sample.
    (cell,) = ["".join(c["source"]) for c in json.loads((ROOT / "Train.ipynb").read_text())["cells"]
               if "dataset[offset]" in "".join(c["source"])]
    data_config = AudioDatasetConfig(data_dir=str(tiny_data_dir), sequence_length=32, parameter_specs=TINY_SPECS,
                                     add_noise=False, numtokens=64)
    namespace = {"dataset": MuLawAudioDataset(data_config), "data_config": data_config, "plt": plt,
                 "read_mono": read_mono}
    exec(cell, namespace)
    raw, coded = (axes.lines[0].get_ydata() for axes in (namespace["raw"], namespace["coded"]))
    plt.close(namespace["fig"])
    assert namespace["offset"] == 4000 - 32 - 1  # the tiny files are 0.25 s, so the last window of the first file
    assert len(raw) == len(coded) == 32
    np.testing.assert_allclose(coded, mu_law_encode(raw, 64) / 63, atol=1e-6)
    assert "index / 63" in namespace["coded"].get_title()
