"""Train.ipynb then Inference.ipynb, top to bottom, headless, with a tiny configuration."""
import json

import papermill
import pytest

from tests.conftest import ROOT, TINY_SPECS


def execute(name: str, output_dir, parameters: dict) -> dict:
    """Run a notebook with papermill and return the executed notebook as JSON."""
    executed = output_dir / name
    papermill.execute_notebook(str(ROOT / name), str(executed), parameters=parameters, kernel_name="python3",
                               cwd=str(ROOT), progress_bar=False)
    return json.loads(executed.read_text())


def outputs_of(notebook: dict, mime: str) -> int:
    return sum(mime in out.get("data", {}) for cell in notebook["cells"] for out in cell.get("outputs", []))


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
    assert outputs_of(inference_nb, "application/vnd.jupyter.widget-view+json") == 1
