"""The periodic reference: its channels against a direct computation, in training windows and in generation."""
import math

import numpy as np
import pytest
import torch

from audioDataLoader.audio_dataset import AudioDatasetConfig, MuLawAudioDataset
from audioDataLoader.mulaw import mu_law_decode, mu_law_encode
from live.engine import EngineConfig, LiveEngine
from model.generation import SynthStream, run_inference
from model.gru_audio_model import RNN, GRUAudioConfig
from model.reference import PeriodicReference, frequency_hz
from tests.harness.backends import lively_model
from tests.harness.run_folders import TINY_SPECS, write_tone

SR = 16000


def reference(harmonics: int = 2, units: str = "midi", low: float = 64.0, high: float = 76.0) -> PeriodicReference:
    return PeriodicReference(harmonics, 2, low, high, units, SR)


def direct_channels(phases: np.ndarray, harmonics: int) -> np.ndarray:
    return np.stack([f(k * phases) for k in range(1, harmonics + 1) for f in (np.sin, np.cos)], axis=-1)


def test_a_window_is_aligned_to_its_fundamental_by_a_least_squares_fit():
    ref, omega = reference(3), 2 * math.pi * 220.0 / SR
    t = np.arange(512)
    for theta in (0.0, 1.0, -2.5):
        pure = 0.6 * np.cos(omega * t + theta)
        channels = ref.aligned(torch.tensor(pure[None]), torch.tensor([220.0]))[0].numpy()
        np.testing.assert_allclose(channels, direct_channels(omega * t + theta, 3), atol=1e-5)
        # A second harmonic over a window of no whole number of periods moves the fit by a few tenths of a degree
        # (k times that in the k-th channel pair).
        rich = pure + 0.2 * np.cos(2 * omega * t + 0.3)
        channels = ref.aligned(torch.tensor(rich[None]), torch.tensor([220.0]))[0].numpy()
        np.testing.assert_allclose(channels, direct_channels(omega * t + theta, 3), atol=2e-2)


def test_generation_channels_accumulate_the_phase_of_a_glide_across_blocks():
    ref = reference(2)
    cond = np.zeros((1, 3000, 3), np.float32)
    cond[0, :, 2] = np.linspace(0, 1, 3000)  # p 64 to 76
    steps = 2 * math.pi * frequency_hz(64 + 12 * cond[0, :, 2].astype(np.float64), "midi") / SR
    expected = direct_channels(np.concatenate([[0.0], np.cumsum(steps)[:-1]]), 2)
    whole, _ = ref.channels(cond, np.zeros(1))
    first, phase = ref.channels(cond[:, :1234], np.zeros(1))
    rest, _ = ref.channels(cond[:, 1234:], phase)
    np.testing.assert_allclose(whole[0], expected, atol=1e-5)
    np.testing.assert_array_equal(np.concatenate([first, rest], axis=1), whole)


def test_hz_units_take_the_parameter_as_a_frequency():
    ref = reference(1, "hz", 100.0, 500.0)
    cond = np.full((1, 4, 3), 0.25, np.float32)  # 200 Hz
    channels, phase = ref.channels(cond, np.zeros(1))
    assert phase[0] == pytest.approx(4 * 2 * math.pi * 200 / SR)
    np.testing.assert_allclose(channels[0, :, 0], np.sin(np.arange(4) * 2 * math.pi * 200 / SR), atol=1e-6)


@pytest.fixture(scope="module")
def reference_data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tones")
    for midi in (64, 70, 76):
        write_tone(folder / f"tone_instID1.00_a00.50_p{midi:05.2f}.wav", midi, 0.5, bright=True, seconds=0.5)
    return AudioDatasetConfig(data_dir=str(folder), parameter_specs=TINY_SPECS, sequence_length=400,
                              pitch_parameter="p", reference_harmonics=2, add_noise=False)


def test_training_windows_carry_the_reference_in_phase_with_their_target(reference_data):
    dataset = MuLawAudioDataset(reference_data)
    inputs, targets = dataset.sample_batch(16, torch.Generator().manual_seed(0))
    assert inputs.shape == (16, 400, 1 + 3 + 4)
    audio = mu_law_decode(targets[..., 0], 256).numpy()
    fundamental = inputs[..., 5].numpy()  # cos φ: the target's fundamental peaks with it
    correlation = [np.corrcoef(a, c)[0, 1] for a, c in zip(audio, fundamental)]
    assert min(correlation) > 0.5


def test_a_cold_start_window_starts_from_silence_and_fades_its_note_in(reference_data):
    config = AudioDatasetConfig(**{**reference_data.__dict__, "cold_start": 1.0, "reference_harmonics": 0})
    cold = MuLawAudioDataset(config)
    inputs, targets = cold.sample_batch(8, torch.Generator().manual_seed(1))
    silence = mu_law_encode(torch.zeros(()), 256) / 255
    np.testing.assert_allclose(inputs[:, 0, 0].numpy(), silence.item())  # the first input is silence
    audio = mu_law_decode(targets[..., 0], 256).abs()
    fade = 5 * SR // 1000  # COLD_START_FADE_MS
    gain = (torch.arange(1, 401) / fade).clamp(max=1.0)
    assert (audio <= gain * 0.5 + 0.01).all()  # the tones peak at 0.5: faded in, never louder than the fade allows
    assert audio[:, fade:].max() > 0.4  # and past the fade, the note itself
    warm = MuLawAudioDataset(AudioDatasetConfig(**{**config.__dict__, "cold_start": 0.0}))
    assert (warm.sample_batch(8, torch.Generator().manual_seed(1))[0][:, 0, 0] != silence).any()


def reference_model(data: AudioDatasetConfig, seed: int = 0) -> RNN:
    """A lively model (greedy draws equal across backends) that takes data's parameters and reference."""
    return lively_model(seed, GRUAudioConfig(cond_size=data.conditioning_size))


@pytest.mark.parametrize("backend", ["numba", "c"])
def test_every_backend_plays_a_reference_model_as_pytorch_does(backend, built_runtime):
    data = AudioDatasetConfig(parameter_specs={"instID": (1, 2), "a": (0, 1), "p": (40, 80)}, pitch_parameter="p",
                              reference_harmonics=2)
    model, ref = reference_model(data), PeriodicReference.of(data)
    cond = np.zeros((2, 3000, 3), np.float32)
    cond[:, :, 1] = 0.7
    cond[0, :, 2] = np.linspace(0.1, 0.9, 3000)  # a glide
    cond[1, :, 2] = 0.3
    torch_audio = run_inference(model, cond, top_n=1, backend="torch", reference=ref)
    np.testing.assert_array_equal(run_inference(model, cond, top_n=1, backend=backend, reference=ref), torch_audio)
    stream = SynthStream(model, top_n=1, backend=backend, reference=ref)  # in blocks: the phase carries on
    np.testing.assert_array_equal(np.concatenate([stream.render(cond[:, :1000]), stream.render(cond[:, 1000:])],
                                                 axis=1), torch_audio)


def test_a_reference_model_without_its_reference_is_refused_with_what_to_pass():
    data = AudioDatasetConfig(pitch_parameter="p", reference_harmonics=1)
    with pytest.raises(ValueError, match=r"reference=PeriodicReference.of\(config\['data'\]\)"):
        run_inference(reference_model(data), np.zeros((10, 3), np.float32))


def test_live_notes_restart_the_phase_and_glides_keep_it_continuous():
    data = AudioDatasetConfig(pitch_parameter="p", reference_harmonics=1)
    engine = LiveEngine(reference_model(data), data, EngineConfig(voices=2, output_rate=SR, seed=0, glide_ms=0.0))
    voices = engine._voices
    engine.note_on(64, at=0)
    engine.pull(1000)
    assert voices.phase[0] == pytest.approx(1000 * 2 * math.pi * frequency_hz(64.0, "midi") / SR)
    engine.note_off(64, at=1000)
    engine.pull(3000)  # released and freed
    engine.note_on(70, at=4000)
    engine.pull(1)
    assert voices.phase[0] == pytest.approx(2 * math.pi * frequency_hz(70.0, "midi") / SR)  # restarted at 0


def test_cold_windows_start_at_a_files_attack_and_no_window_lies_in_its_release_tail(tmp_path):
    tone = np.zeros(SR, np.float32)
    t = np.arange(8000) / SR
    tone[800:8800] = 0.5 * np.sin(2 * np.pi * 330 * t)  # 50 ms of silence, the note, then 0.45 s of silence
    import soundfile as sf

    sf.write(tmp_path / "note_instID1.00_a00.50_p64.00.wav", tone, SR)
    config = AudioDatasetConfig(data_dir=str(tmp_path), parameter_specs=TINY_SPECS, sequence_length=400,
                                add_noise=False, cold_start=0.5)
    dataset = MuLawAudioDataset(config)
    onset = int(dataset.sound_starts[0])  # ONSET_MS (32 samples) before the first sample above silence
    assert dataset.starts_silent.tolist() == [True] and 800 - 32 <= onset <= 800 - 30
    assert 8800 - 2 - onset - 400 <= len(dataset) <= 8800 - onset - 400  # windows lie where the note sounds
    inputs, targets = dataset.sample_batch(64, torch.Generator().manual_seed(2))
    silence = mu_law_encode(torch.zeros(()), 256)
    attack = mu_law_encode(torch.from_numpy(tone[onset + 1:onset + 401]), 256)
    at_attack = (targets[..., 0] == attack).all(dim=1)
    assert 16 <= int(at_attack.sum()) <= 48  # about half the windows start cold, at the attack
    assert (inputs[at_attack, 0, 0] == silence / 255).all()
    assert not (targets[..., 0] == silence).all(dim=1).any()  # no window is silence throughout


def test_a_note_sets_a_pitch_parameter_in_hz_to_its_frequency():
    data = AudioDatasetConfig(parameter_specs={"instID": (1, 2), "a": (0, 1), "p": (100.0, 1000.0)},
                              pitch_parameter="p", pitch_units="hz", reference_harmonics=1)
    engine = LiveEngine(reference_model(data), data, EngineConfig(voices=1, output_rate=SR, seed=0))
    engine.note_on(69, at=0)
    engine.pull(100)
    pitch = engine._params.at(np.array([0]), np.array([99.0]))[0, 0, 2]
    assert pitch == pytest.approx(440.0)
    assert engine._voices.phase[0] == pytest.approx(100 * 2 * math.pi * 440.0 / SR)
