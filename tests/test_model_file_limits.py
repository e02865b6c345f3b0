"""The Python loader and the C runtime judge spoiled model files alike (tests/model_file_cases.py), and the Python
loader builds nothing before a file passes every check."""
import pytest

import utils.model_file
from model.c_sampler import CModel
from tests.model_file_cases import CASES, spoil, valid_model_file
from utils.model_file import read_model_bytes, read_model_file


@pytest.fixture(scope="module")
def reference_model_bytes():
    return valid_model_file()


def python_verdict(raw: bytes) -> str | None:
    """Return None when the Python loader accepts the file, else its one-line reason."""
    try:
        read_model_bytes(raw, "spoiled.safetensors")
    except ValueError as error:
        message = str(error)
        assert message.startswith("spoiled.safetensors: ") and "\n" not in message
        return message
    return None


def c_verdict(raw: bytes) -> str | None:
    try:
        CModel(raw)
    except ValueError as error:
        return str(error)
    return None


@pytest.mark.usefixtures("built_runtime")
@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_the_python_loader_and_the_c_runtime_judge_each_spoiled_file_alike(case, reference_model_bytes):
    raw = spoil(reference_model_bytes, case)
    python, c = python_verdict(raw), c_verdict(raw)
    if case.refused is None:
        assert (python, c) == (None, None)
    else:
        assert python is not None and case.refused in python, python
        assert c is not None and case.refused in c, c


@pytest.mark.parametrize("case", [case for case in CASES if case.refused], ids=lambda case: case.name)
def test_the_python_loader_builds_no_network_for_a_refused_file(case, reference_model_bytes, monkeypatch):
    def refuse_to_build(config):
        raise AssertionError(f"built a network of {config} before refusing the file")

    monkeypatch.setattr(utils.model_file, "RNN", refuse_to_build)
    with pytest.raises(ValueError, match="spoiled.safetensors: "):
        read_model_bytes(spoil(reference_model_bytes, case), "spoiled.safetensors")


def test_a_missing_file_is_refused_in_one_line_naming_it(tmp_path):
    with pytest.raises(ValueError, match=f"^{tmp_path / 'none.safetensors'} is not a readable model file"):
        read_model_file(tmp_path / "none.safetensors")
