"""The C runtime's batched kernel (rc_voices_render, CVoices): voices rendered together play what PyTorch plays,
on every kernel this CPU runs (the portable loop, AVX2, AVX-512), with voices starting and stopping between calls."""
import numpy as np
import pytest
import torch

import model.c_sampler as c_sampler
from model.c_sampler import CVoice
from model.reference import PeriodicReference
from model.sampler import silent_voices
from tests.harness.backends import lively_model, random_model
from tests.test_c_runtime import reference_model, reference_runtime

pytestmark = pytest.mark.usefixtures("built_runtime")

VOICE_COUNTS = (1, 3, 16, 33)  # one; a block of two and one; whole blocks of four; more than a pass's 32 of them


@pytest.fixture(params=c_sampler.KERNELS)
def kernel(request, built_runtime):
    """Run the test on one kernel, skipped where this CPU lacks it; the one picked at load afterwards."""
    picked = c_sampler.kernel()
    try:
        c_sampler.use_kernel(request.param)
    except ValueError:
        pytest.skip(f"this CPU has no {request.param} kernel")
    yield request.param
    c_sampler.use_kernel(picked)


def test_the_kernel_picked_at_load_is_one_the_runtime_names():
    assert c_sampler.kernel() in c_sampler.KERNELS
    with pytest.raises(ValueError, match="no 'sse9' kernel"):
        c_sampler.use_kernel("sse9")


def schedule(voices: int, calls: int, seed: int) -> list[np.ndarray]:
    """Which voices play in each call: all at first, then random subsets (some calls a single voice, or none)."""
    rng = np.random.default_rng(seed)
    subsets = [np.arange(voices)]
    for _ in range(calls - 1):
        subsets.append(np.flatnonzero(rng.random(voices) < rng.choice([0.0, 0.3, 0.8])) if voices > 1 else
                       np.arange(voices))
    return subsets


@pytest.mark.parametrize("voices", VOICE_COUNTS)
def test_batched_logits_equal_pytorch_with_voices_stepping_in_subsets(kernel, voices):
    model = random_model(0)
    steps, width = 40, 1 + model.config.cond_size
    inputs = torch.rand(voices, steps, width, generator=torch.Generator().manual_seed(voices)).numpy()
    bank = silent_voices(model, voices, "c", encode=True, seed=0)
    taken = [[] for _ in range(voices)]  # each voice's inputs and the batched logits it got, in its own order
    for t, which in enumerate(schedule(voices, steps, seed=voices)):
        for b, logits in zip(which, bank.step(inputs[which, t], which)):
            taken[b].append((inputs[b, t], logits))
    for b in range(voices):
        fed = torch.as_tensor(np.array([x for x, _ in taken[b]]))
        with torch.no_grad():
            expected, _ = model(fed[None], model.init_hidden(1, torch.device("cpu")))
        np.testing.assert_allclose(np.array([logits for _, logits in taken[b]]), expected[0].numpy(),
                                   rtol=0, atol=1e-4)


@pytest.mark.parametrize("voices", VOICE_COUNTS)
def test_batched_greedy_codes_equal_pytorch_as_voices_start_and_stop(kernel, voices):
    # lively_model's leading class leads by far more than C's rounding, so greedy play must agree to the sample.
    model = lively_model(19)
    torch_voices = silent_voices(model, voices, "torch", encode=True, seed=0)
    c_voices = silent_voices(model, voices, "c", encode=True, seed=0)
    rng = np.random.default_rng(voices)
    played = 0
    for call, which in enumerate(schedule(voices, 8, seed=100 + voices)):
        cond = rng.uniform(size=(len(which), 60, model.config.cond_size)).astype(np.float32)
        expected = torch_voices.sample(cond, 1, 1.0, which)
        np.testing.assert_array_equal(c_voices.sample(cond, 1, 1.0, which), expected, err_msg=f"call {call}")
        played += expected.size
        for voice in rng.choice(voices, size=voices // 3, replace=False):  # notes end and new ones start
            torch_voices.restart(int(voice), 0)
            c_voices.restart(int(voice), 0)
    assert played > 0


@pytest.mark.parametrize("threads", [1, 2])
def test_a_voice_plays_the_same_alone_or_rendered_with_others(kernel, threads):
    # Drawing (top 3) as well: the batched kernel's sums run in the same order whatever the voices beside them.
    model = random_model(5)
    cond = np.random.default_rng(0).uniform(size=(5, 300, model.config.cond_size)).astype(np.float32)
    together = silent_voices(model, 5, "c", encode=True, seed=7, threads=threads).sample(cond, 3, 1.0)
    for b in range(5):
        alone = silent_voices(model, 5, "c", encode=True, seed=7)
        np.testing.assert_array_equal(alone.sample(cond[b:b + 1], 3, 1.0, which=np.array([b]))[0], together[b])


@pytest.mark.parametrize("top_n", [1, 2, 3, 8, 9, 0])
def test_many_voices_draw_as_each_would_alone_with_any_top_n(kernel, top_n):
    # 17 voices: a pass across lanes on every kernel (its own search for the n largest up to 8, the voice's own above),
    # and a pass of one.
    model = random_model(6)
    cond = np.random.default_rng(1).uniform(size=(17, 120, model.config.cond_size)).astype(np.float32)
    together = silent_voices(model, 17, "c", encode=True, seed=3).sample(cond, top_n, 0.7)
    for b in range(17):
        alone = silent_voices(model, 17, "c", encode=True, seed=3)
        np.testing.assert_array_equal(alone.sample(cond[b:b + 1], top_n, 0.7, which=np.array([b]))[0], together[b],
                                      err_msg=f"voice {b}")


@pytest.mark.parametrize("voices", [1, 17])
def test_equal_largest_logits_are_drawn_lowest_class_first(kernel, voices):
    # Four classes share the largest logit, in different blocks of 16 and the last; the top 3 are the lowest three.
    model = random_model(0)
    with torch.no_grad():
        model.output.weight.zero_()
        model.output.bias.fill_(-10.0)
        model.output.bias[[7, 50, 100, 240]] = 5.0
        model.output.bias[[8, 51]] = 4.0
    cond = np.zeros((voices, 300, model.config.cond_size), np.float32)
    for top_n, expected in ((1, {7}), (3, {7, 50, 100}), (5, {7, 50, 100, 240, 8})):
        codes = silent_voices(model, voices, "c", encode=True, seed=0).sample(cond, top_n, 1.0)
        assert set(np.unique(codes)) == expected, f"top_n {top_n}"


def test_voices_with_their_own_top_n_draw_as_each_would_alone(kernel):
    model = random_model(7)
    runtime = c_sampler.c_model(model, encode=True)
    cond = np.random.default_rng(2).uniform(size=(12, 90, model.config.cond_size)).astype(np.float32)
    settings = [(1 + b % 4, 0.5 + 0.1 * b) for b in range(12)]

    def voices() -> list[CVoice]:
        made = [CVoice(runtime, 10 + b) for b in range(12)]
        for voice, (top_n, temperature) in zip(made, settings):
            voice.set(top_n, temperature)
        return made

    batch = voices()
    handles = np.array([voice.handle for voice in batch], dtype=np.uintp)
    codes = np.empty((12, 90), np.int32)
    assert runtime.lib.rc_voices_render(handles.ctypes.data_as(c_sampler._HANDLES), 12, cond.ctypes.data,
                                        codes.ctypes.data, None, 90) == 0
    for voice, own, expected in zip(voices(), cond, codes):
        np.testing.assert_array_equal(voice.render_conditioned(own), expected)


def test_batched_voices_play_their_own_periodic_reference(kernel):
    # Through the C API, where the runtime adds each voice's reference channels from its own phase.
    model, data = reference_model(4)
    runtime = reference_runtime(model, data)
    cond = np.random.default_rng(1).uniform(size=(3, 500, 3)).astype(np.float32)
    batch = [CVoice(runtime, seed) for seed in (1, 2, 3)]
    batch[1].render_conditioned(cond[1, :77])  # one voice's phase and state ahead of the others
    alone = [CVoice(runtime, seed) for seed in (1, 2, 3)]
    alone[1].render_conditioned(cond[1, :77])
    handles = np.array([voice.handle for voice in batch], dtype=np.uintp)
    codes = np.empty((3, 500), np.int32)
    assert runtime.lib.rc_voices_render(handles.ctypes.data_as(c_sampler._HANDLES), 3, cond.ctypes.data,
                                        codes.ctypes.data, None, 500) == 0
    for voice, own, expected in zip(alone, cond, codes):
        np.testing.assert_array_equal(voice.render_conditioned(own), expected)


def test_greedy_batched_reference_voices_follow_pytorch(kernel):
    # Through make_voices, where Python adds the reference (ReferencedVoices) and the runtime renders in a batch.
    model, data = reference_model(0)
    reference = PeriodicReference.of(data)
    cond = np.random.default_rng(2).uniform(size=(4, 400, 3)).astype(np.float32)
    expected = silent_voices(model, 4, "torch", True, 0, reference=reference).sample(cond, 1, 1.0)
    np.testing.assert_array_equal(silent_voices(model, 4, "c", True, 0, reference=reference).sample(cond, 1, 1.0),
                                  expected)


def test_rendering_voices_of_two_models_together_is_refused():
    first, second = (c_sampler.c_model(random_model(seed), encode=True) for seed in (0, 1))
    voices = [CVoice(first, 0), CVoice(second, 0)]
    handles = np.array([voice.handle for voice in voices], dtype=np.uintp)
    codes = np.zeros((2, 10), np.int32)
    cond = np.zeros((2, 10, 3), np.float32)
    assert first.lib.rc_voices_render(handles.ctypes.data_as(c_sampler._HANDLES), 2, cond.ctypes.data,
                                      codes.ctypes.data, None, 10) == -1
    assert not codes.any()
