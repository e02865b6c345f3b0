
import numpy as np
import pytest
import torch

import model.c_sampler as c_sampler
from audioDataLoader.audio_dataset import AudioDatasetConfig, input_value_table
from audioDataLoader.mulaw import mu_law_decode, mu_law_encode
from live.notes import from_midi_value, note_value
from model.c_sampler import CModel, CVoice, c_model
from model.generation import SynthStream, prime, run_inference
from model.gru_audio_model import RNN, GRUAudioConfig
from model.reference import PeriodicReference
from model.sampler import choose_backend
from tests.harness.backends import (
    assert_greedy_backend_follows_torch,
    chi_square,
    gliding_conditioning,
    lively_model,
    random_model,
)
from tests.test_model_file import header_and_data, write_with_header
from utils.checks import MIN_TEMPERATURE
from utils.model_file import model_file_bytes

pytestmark = pytest.mark.usefixtures("built_runtime")


@pytest.mark.parametrize("config", [
    GRUAudioConfig(),
    GRUAudioConfig(cond_size=2, hidden_size=10, num_layers=1, numtokens=30),  # no multiple of a vector, one layer
    GRUAudioConfig(cond_size=0, hidden_size=7, num_layers=3, numtokens=13),  # no parameters at all
    GRUAudioConfig(cond_every_layer=True),
    GRUAudioConfig(cond_size=2, hidden_size=9, num_layers=3, numtokens=20, cond_every_layer=True),
])
def test_c_logits_equal_pytorch_over_10000_teacher_forced_steps(config):
    model = random_model(0, config)
    inputs = torch.rand(10_000, 1 + config.cond_size, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected, hidden = model(inputs[None])
    voice = CVoice(c_model(model, encode=True), 0)
    logits = np.stack([voice.step(x) for x in inputs.numpy()])
    np.testing.assert_allclose(logits, expected[0].numpy(), rtol=0, atol=1e-4)
    np.testing.assert_allclose(voice.hidden, hidden[:, 0].numpy(), rtol=0, atol=1e-5)


def test_greedy_c_sampler_equals_the_pytorch_loop_for_two_seconds():
    # Over 32,000 steps most random models meet a near tie, where rounding may pick either class and the two loops
    # part; this one (found by trying seeds) never comes closer than 1.4e-4, against C's largest error of 1e-5.
    assert_greedy_backend_follows_torch(lively_model(19), 32_000, "c", least_margin=1e-4, least_values=3)


@pytest.mark.parametrize("top_n, temperature", [(5, 1.0), (3, 0.5), (0, 2.0)])
def test_c_draws_agree_with_numba_draws(top_n, temperature):
    # The same state drawn from 20,000 times: numba as 20,000 voices, C as one voice put back in that state before
    # each draw. The two counts must be two samples of one law.
    model = random_model(3)
    with torch.no_grad():
        model.output.weight.mul_(60)  # spread-out probabilities, so a temperature 10% off fails the test
    draws, warmup, cond = 20_000, 0.3 * np.sin(np.linspace(0, 10, 30)), np.full((1, 3), 0.4, np.float32)
    audio = run_inference(model, np.repeat(cond[None], draws, axis=0), warmup, top_n=top_n, temperature=temperature,
                          seed=12, backend="numba")
    from_numba = np.bincount(mu_law_encode(audio[:, 0], 256), minlength=256)

    previous, hidden, _ = prime(model, warmup, torch.as_tensor(cond)[None], input_value_table(256, True))
    voice = CVoice(c_model(model, encode=True), 11)
    voice.set(top_n, temperature)
    codes = []
    for _ in range(draws):
        voice.hidden[:], voice.previous = hidden[:, 0].numpy(), int(previous[0])
        codes.append(voice.render_conditioned(cond)[0])
    from_c = np.bincount(codes, minlength=256)

    if top_n:
        assert (from_c > 0).sum() <= top_n and set(np.flatnonzero(from_c)) <= set(np.flatnonzero(from_numba))
    statistic, df = chi_square(from_c, from_numba / from_numba.sum())
    # Pearson's statistic against numba's frequencies, whose own noise doubles its variance; eight standard
    # deviations above the mean is far below where a temperature 10% off or another top_n lands.
    assert statistic < 2 * df + 8 * np.sqrt(2 * 2 * df), f"chi-square {statistic:.1f} with {df} df"


def test_c_blocks_join_into_one_long_render():
    model, cond = random_model(0), gliding_conditioning(900)
    whole = SynthStream(model, top_n=3, seed=4, backend="c").render(cond)
    stream = SynthStream(model, top_n=3, seed=4, backend="c")
    blocks = [stream.render(cond[start:start + 300]) for start in (0, 300, 600)]
    np.testing.assert_array_equal(np.concatenate(blocks), whole)


def test_a_c_voice_does_not_depend_on_the_voices_beside_it():
    model = random_model(0)
    cond = np.random.default_rng(0).uniform(size=(3, 500, 3)).astype(np.float32)
    together = run_inference(model, cond, None, top_n=3, seed=5, backend="c")
    alone = run_inference(model, cond[0], None, top_n=3, seed=5, backend="c")
    np.testing.assert_array_equal(together[0], alone)
    assert not np.array_equal(together[0], together[1])


def test_parameters_set_by_name_in_their_own_units_play_like_normalised_conditioning():
    model = random_model(2)
    runtime = c_model(model, encode=True)  # parameters named parameter0.. with ranges (0, 1)
    by_name, normalised = CVoice(runtime, 7), CVoice(runtime, 7)
    for name, value in zip(runtime.parameter_names, (0.2, 0.9, 0.5)):
        by_name.set_parameter(name, value)
    held = by_name.render(400)
    codes = normalised.render_conditioned(np.tile(np.float32([0.2, 0.9, 0.5]), (400, 1)))
    np.testing.assert_array_equal(held, mu_law_decode(codes, 256))
    with pytest.raises(ValueError, match=r"no parameter 'pitch'; its parameters are \['parameter0'"):
        by_name.set_parameter("pitch", 60)


def test_backend_c_says_how_to_build_the_runtime_when_it_is_missing(monkeypatch, tmp_path):
    monkeypatch.setattr(c_sampler, "LIBRARY", tmp_path / "librnncontrol.so")
    c_sampler.library.cache_clear()
    try:
        with pytest.raises(ImportError, match=r"make -C runtime"):
            choose_backend(random_model(0), "c")
    finally:
        c_sampler.library.cache_clear()


def test_c_temperature_floor_is_pythons():
    # 1e-3f is the float nearest 1e-3, so every temperature Python lets through reaches C at or above the floor.
    assert c_sampler.library().rc_min_temperature() == np.float32(MIN_TEMPERATURE)


def test_c_voice_refuses_temperatures_below_the_floor_and_keeps_its_own():
    model = c_model(random_model(0), encode=True)
    refused, untouched = CVoice(model, 3), CVoice(model, 3)
    for voice in (refused, untouched):
        voice.set(0, 0.7)
    for temperature in (5e-4, 0.0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="temperature"):
            refused.set(0, temperature)
    np.testing.assert_array_equal(refused.render(500), untouched.render(500))
    refused.set(0, MIN_TEMPERATURE)


def test_c_velocity_value_is_live_plays_rule():
    specs = {"p": (64.0, 76.0), "a": (0.0, 1.0), "level": (0.25, 0.75), "gain": (-24.0, 6.0)}  # exact in float32
    data = AudioDatasetConfig(parameter_specs=specs, numtokens=256)
    model = CModel(model_file_bytes(random_model(0, GRUAudioConfig(cond_size=len(specs))), data, "in memory"))
    for index, spec in enumerate(specs.values()):
        for velocity in (0, 1, 64, 100, 127):
            expected = np.float32(from_midi_value(spec, velocity))
            assert model.velocity_value(index, velocity) == expected, (index, velocity)


@pytest.mark.parametrize("units", ["midi", "hz"])
def test_c_note_value_is_live_plays_rule(units):
    model, data = reference_model(0, units)
    runtime = reference_runtime(model, data)
    for note in (40.0, 57.5, 69.0, 80.0):
        assert runtime.note_value(2, note) == np.float32(note_value(note, units)), note  # p, the reference's pitch
        assert runtime.note_value(1, note) == np.float32(note)  # any other parameter takes the number as it is


REFERENCE_SPECS = {"midi": {"instID": (1.0, 2.0), "a": (0.0, 1.0), "p": (40.0, 80.0)},
                   "hz": {"instID": (1.0, 2.0), "a": (0.0, 1.0), "p": (80.0, 900.0)}}


def reference_model(seed: int, units: str = "midi", cond_every_layer: bool = False) -> tuple[RNN, AudioDatasetConfig]:
    """Return (a lively random model with a 2-harmonic periodic reference following `p`, its data settings)."""
    data = AudioDatasetConfig(parameter_specs=REFERENCE_SPECS[units], pitch_parameter="p", reference_harmonics=2,
                              pitch_units=units)
    config = GRUAudioConfig(cond_size=data.conditioning_size, cond_every_layer=cond_every_layer)
    return lively_model(seed, config), data


def reference_runtime(model: RNN, data: AudioDatasetConfig) -> CModel:
    return CModel(model_file_bytes(model, data, "in memory"))


@pytest.mark.parametrize("units, cond_every_layer", [("midi", False), ("hz", False), ("midi", True)])
def test_greedy_c_voice_plays_the_reference_as_the_pytorch_loop_does(units, cond_every_layer):
    model, data = reference_model(0, units, cond_every_layer)
    cond = gliding_conditioning(4000)  # p sweeps its range back and forth
    expected = run_inference(model, cond, top_n=1, backend="torch", reference=PeriodicReference.of(data))
    voice = CVoice(reference_runtime(model, data), 0)
    voice.set(1, 1.0)
    codes = voice.render_conditioned(cond)
    assert len(np.unique(codes)) > 3
    np.testing.assert_array_equal(mu_law_decode(codes, 256), expected)


def test_a_reference_voice_rendered_in_two_blocks_plays_one_block():
    model, data = reference_model(1)
    runtime, cond = reference_runtime(model, data), gliding_conditioning(3000)
    whole, split = CVoice(runtime, 4), CVoice(runtime, 4)
    blocks = [split.render_conditioned(cond[:1234]), split.render_conditioned(cond[1234:])]
    np.testing.assert_array_equal(np.concatenate(blocks), whole.render_conditioned(cond))


def test_held_parameters_play_the_reference_as_conditioned_rows_do():
    model, data = reference_model(1)
    runtime = reference_runtime(model, data)
    held, conditioned = CVoice(runtime, 6), CVoice(runtime, 6)
    for name, value in (("instID", 2.0), ("a", 0.5), ("p", 60.0)):
        held.set_parameter(name, value)
    rows = np.tile(np.float32([1.0, 0.5, 0.5]), (2000, 1))  # the same values mapped to [0, 1]
    np.testing.assert_array_equal(held.render(2000), mu_law_decode(conditioned.render_conditioned(rows), 256))


def test_a_reset_reference_voice_plays_what_a_fresh_voice_plays():
    model, data = reference_model(2)
    runtime, cond = reference_runtime(model, data), gliding_conditioning(1500)
    used = CVoice(runtime, 1)
    used.render_conditioned(cond[::-1].copy())  # the phase, hidden state and last sample all move on
    used.restart(9)
    np.testing.assert_array_equal(used.render_conditioned(cond), CVoice(runtime, 9).render_conditioned(cond))


def test_teacher_forcing_takes_the_whole_network_input_and_leaves_the_phase_alone():
    model, data = reference_model(3)
    runtime, cond = reference_runtime(model, data), gliding_conditioning(1000)
    inputs = torch.rand(300, 1 + data.conditioning_size, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = model(inputs[None])[0][0].numpy()
    stepped = CVoice(runtime, 5)
    np.testing.assert_allclose(np.stack([stepped.step(x) for x in inputs.numpy()]), expected, rtol=0, atol=1e-4)

    straight, interrupted = CVoice(runtime, 5), CVoice(runtime, 5)
    for voice in (straight, interrupted):
        voice.render_conditioned(cond[:500])
    hidden, previous = interrupted.hidden.copy(), interrupted.previous
    interrupted.step(inputs[0].numpy())
    interrupted.hidden[:], interrupted.previous = hidden, previous  # all the step changed, put back
    np.testing.assert_array_equal(interrupted.render_conditioned(cond[500:]), straight.render_conditioned(cond[500:]))


def test_version_1_files_load_as_models_without_a_reference(tmp_path):
    model, data = random_model(4), AudioDatasetConfig(parameter_specs=REFERENCE_SPECS["midi"])
    (tmp_path / "v2.safetensors").write_bytes(model_file_bytes(model, data, "in memory"))
    header, tensors = header_and_data(tmp_path / "v2.safetensors")
    metadata = {key: value for key, value in header["__metadata__"].items() if not key.startswith("reference.")}
    write_with_header(tmp_path / "v1.safetensors", {**header, "__metadata__": {**metadata, "format_version": "1"}},
                      tensors)
    old, new = (CModel.from_file(tmp_path / f"{name}.safetensors") for name in ("v1", "v2"))
    assert old.parameter_names == ["instID", "a", "p"]
    assert old.reference_harmonics == 0
    cond = gliding_conditioning(500)
    np.testing.assert_array_equal(CVoice(old, 3).render_conditioned(cond), CVoice(new, 3).render_conditioned(cond))


@pytest.mark.parametrize("key, value", [("reference.harmonics", "99"), ("reference.pitch", "3"),
                                        ("reference.units", "bark"), ("reference.harmonics", "4")])  # 8 > cond_size 7
def test_the_c_runtime_refuses_bad_reference_metadata_in_one_line_naming_the_key(tmp_path, key, value):
    (tmp_path / "good.safetensors").write_bytes(model_file_bytes(*reference_model(0), "in memory"))
    header, tensors = header_and_data(tmp_path / "good.safetensors")
    assert CModel.from_file(tmp_path / "good.safetensors").reference_harmonics == 2
    spoiled = tmp_path / "spoiled.safetensors"
    write_with_header(spoiled, {**header, "__metadata__": {**header["__metadata__"], key: value}}, tensors)
    with pytest.raises(ValueError, match=f"metadata '{key}' is '?{value}") as refused:
        CModel.from_file(spoiled)
    assert "\n" not in str(refused.value)
