"""The C runtime (runtime/librnncontrol.so) through ctypes: models, voices, and `CVoices`, SynthStream's "c" backend.

The library is built by scripts/setup.sh (`make -C runtime`). Calls into it release the GIL, so voices render on
threads of their own, as the runtime allows (a model is read-only, a voice owns its memory). `CVoices` renders its
voices together (`rc_voices_render`): each weight is read once a sample for all of them.
"""
from __future__ import annotations

import ctypes
import functools
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

from audioDataLoader.audio_dataset import AudioDatasetConfig
from model.gru_audio_model import RNN
from model.numba_sampler import seed_states
from utils.model_file import model_file_bytes

LIBRARY = Path(__file__).resolve().parents[1] / "runtime" / "librnncontrol.so"
_ERROR_SIZE = 512
_FLOATS = np.ctypeslib.ndpointer(np.float32, flags="C_CONTIGUOUS")
_CODES = np.ctypeslib.ndpointer(np.int32, flags="C_CONTIGUOUS")
_HANDLES = ctypes.POINTER(ctypes.c_void_p)
_SIGNATURES = {  # name: (result, arguments)
    "rc_model_load": (ctypes.c_void_p, [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_size_t]),
    "rc_model_load_buffer": (ctypes.c_void_p, [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_char_p, ctypes.c_size_t]),
    "rc_model_free": (None, [ctypes.c_void_p]),
    "rc_model_sample_rate": (ctypes.c_int, [ctypes.c_void_p]),
    "rc_model_numtokens": (ctypes.c_int, [ctypes.c_void_p]),
    "rc_model_num_layers": (ctypes.c_int, [ctypes.c_void_p]),
    "rc_model_hidden_size": (ctypes.c_int, [ctypes.c_void_p]),
    "rc_model_num_parameters": (ctypes.c_int, [ctypes.c_void_p]),
    "rc_model_parameter_name": (ctypes.c_char_p, [ctypes.c_void_p, ctypes.c_int]),
    "rc_model_velocity_value": (ctypes.c_float, [ctypes.c_void_p, ctypes.c_int, ctypes.c_float]),
    "rc_model_reference_harmonics": (ctypes.c_int, [ctypes.c_void_p]),
    "rc_model_note_value": (ctypes.c_float, [ctypes.c_void_p, ctypes.c_int, ctypes.c_float]),
    "rc_min_temperature": (ctypes.c_float, []),
    "rc_voice_new": (ctypes.c_void_p, [ctypes.c_void_p, ctypes.c_uint64]),
    "rc_voice_free": (None, [ctypes.c_void_p]),
    "rc_voice_reset": (None, [ctypes.c_void_p]),
    "rc_voice_set_random_state": (None, [ctypes.c_void_p, ctypes.c_uint64]),
    "rc_voice_set_top_n": (None, [ctypes.c_void_p, ctypes.c_int]),
    "rc_voice_set_temperature": (ctypes.c_int, [ctypes.c_void_p, ctypes.c_float]),
    "rc_voice_set_parameter": (ctypes.c_int, [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_float]),
    "rc_voice_render": (None, [ctypes.c_void_p, _FLOATS, ctypes.c_int]),
    "rc_voice_render_conditioned": (None, [ctypes.c_void_p, _FLOATS, _CODES, ctypes.c_void_p, ctypes.c_int]),
    "rc_voice_step": (ctypes.POINTER(ctypes.c_float), [ctypes.c_void_p, _FLOATS]),
    "rc_voices_render": (ctypes.c_int, [_HANDLES, ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p,
                                        ctypes.c_int]),
    "rc_voices_step": (ctypes.c_int, [_HANDLES, ctypes.c_int, _FLOATS, _FLOATS]),
    "rc_kernel": (ctypes.c_char_p, []),
    "rc_set_kernel": (ctypes.c_int, [ctypes.c_char_p]),
    "rc_voice_hidden": (ctypes.POINTER(ctypes.c_float), [ctypes.c_void_p]),
    "rc_voice_set_previous": (ctypes.c_int, [ctypes.c_void_p, ctypes.c_int]),
    "rc_voice_previous": (ctypes.c_int, [ctypes.c_void_p]),
}


def c_runtime_available() -> bool:
    """Return whether the C runtime has been built."""
    return LIBRARY.is_file()


def c_runtime_loads() -> bool:
    """Return whether the built C runtime loads with every function this binding calls (a build from an older
    checkout, or for another machine, does not)."""
    try:
        library()
    except (ImportError, OSError, AttributeError):
        return False
    return True


@functools.cache
def library() -> ctypes.CDLL:
    """Return the C runtime with its functions' signatures declared."""
    if not c_runtime_available():
        raise ImportError(f"backend='c' needs the C runtime {LIBRARY}: build it with `make -C runtime` "
                          "(scripts/setup.sh does), or pass backend='numba'")
    lib = ctypes.CDLL(str(LIBRARY))
    for name, (result, arguments) in _SIGNATURES.items():
        function = getattr(lib, name)
        function.restype, function.argtypes = result, arguments
    return lib


KERNELS = ("avx512", "avx2", "portable")  # the runtime's per-sample loops, fastest first


def kernel() -> str:
    """Return the instruction set the runtime's per-sample loop runs on ("avx512", "avx2" or "portable")."""
    return library().rc_kernel().decode()


def use_kernel(name: str) -> None:
    """Make the runtime run every voice on kernel `name` (tests and benchmarks compare them)."""
    if library().rc_set_kernel(name.encode()):
        raise ValueError(f"the C runtime has no {name!r} kernel for this CPU; it runs {kernel()!r} (one of {KERNELS})")


class CModel:
    """A model loaded by the C runtime, from an exported file (`from_file`) or its bytes."""

    def __init__(self, content: bytes, handle: int | None = None) -> None:
        self.lib = library()
        if handle is None:
            error = ctypes.create_string_buffer(_ERROR_SIZE)
            handle = self.lib.rc_model_load_buffer(content, len(content), error, _ERROR_SIZE)
            if not handle:
                raise ValueError(error.value.decode(errors="replace"))
        self.handle = handle
        self.sample_rate = self.lib.rc_model_sample_rate(handle)
        self.numtokens = self.lib.rc_model_numtokens(handle)
        self.hidden_shape = (self.lib.rc_model_num_layers(handle), self.lib.rc_model_hidden_size(handle))
        self.parameter_names = [self.lib.rc_model_parameter_name(handle, i).decode()
                                for i in range(self.lib.rc_model_num_parameters(handle))]
        self.reference_harmonics = self.lib.rc_model_reference_harmonics(handle)  # 0: the model has no reference

    def note_value(self, index: int, note: float) -> float:
        """Return parameter `index`'s value, in its own units, for a note's number (the runtime's rule)."""
        return self.lib.rc_model_note_value(self.handle, index, note)

    def velocity_value(self, index: int, velocity: float) -> float:
        """Return parameter `index`'s value, in its own units, for a note's velocity 0..127 (the runtime's rule)."""
        return self.lib.rc_model_velocity_value(self.handle, index, velocity)

    @classmethod
    def from_file(cls, path: str | Path) -> CModel:
        """Return the model in an exported file, read by the runtime's own loader."""
        lib, error = library(), ctypes.create_string_buffer(_ERROR_SIZE)
        handle = lib.rc_model_load(os.fsencode(path), error, _ERROR_SIZE)
        if not handle:
            raise ValueError(error.value.decode(errors="replace"))
        return cls(b"", handle)

    def __del__(self) -> None:
        if getattr(self, "handle", None):
            self.lib.rc_model_free(self.handle)


class CVoice:
    """One voice of a CModel: its hidden state, last sample, settings and random stream (the splitmix64 state)."""

    def __init__(self, model: CModel, random_state: int) -> None:
        self.model, self.lib = model, model.lib  # the voice reads the model's weights: keep it alive
        self.handle = self.lib.rc_voice_new(model.handle, random_state)
        if not self.handle:
            raise MemoryError("the C runtime could not allocate a voice")

    def __del__(self) -> None:
        if getattr(self, "handle", None):
            self.lib.rc_voice_free(self.handle)

    def set(self, top_n: int | None, temperature: float) -> None:
        """Set the draw: among the top_n classes (None or 0: all; 1: the most likely), at `temperature`."""
        self.lib.rc_voice_set_top_n(self.handle, top_n or 0)
        if self.lib.rc_voice_set_temperature(self.handle, temperature):
            raise ValueError(f"temperature must be at least {self.lib.rc_min_temperature():g}, got {temperature}")

    def restart(self, random_state: int) -> None:
        """Go back to silence and a zero hidden state, drawing next from the splitmix64 state `random_state`."""
        self.lib.rc_voice_reset(self.handle)
        self.lib.rc_voice_set_random_state(self.handle, random_state)

    def set_parameter(self, name: str, value: float) -> None:
        """Hold parameter `name` at `value`, in its own units."""
        if self.lib.rc_voice_set_parameter(self.handle, name.encode(), value):
            raise ValueError(f"this model has no parameter {name!r}; its parameters are {self.model.parameter_names}")

    def render(self, num_samples: int) -> np.ndarray:
        """Return the next num_samples of float32 audio with the parameters held."""
        audio = np.empty(num_samples, np.float32)
        self.lib.rc_voice_render(self.handle, audio, num_samples)
        return audio

    def render_conditioned(self, cond: np.ndarray) -> np.ndarray:
        """Return the mu-law classes (T,) generated for cond (T, P) in [0, 1]; the parameters stay at its last row."""
        cond = np.ascontiguousarray(cond, dtype=np.float32)
        codes = np.empty(len(cond), np.int32)
        self.lib.rc_voice_render_conditioned(self.handle, cond, codes, None, len(cond))  # no audio: decoded by the caller
        return codes

    def step(self, x: np.ndarray) -> np.ndarray:
        """Return the logits (N,) for one teacher-forced input x, the whole network input (1 + P + 2K values: audio,
        parameters, reference), advancing the hidden state; the reference's phase is left alone."""
        logits = self.lib.rc_voice_step(self.handle, np.ascontiguousarray(x, dtype=np.float32))
        return np.ctypeslib.as_array(logits, (self.model.numtokens,)).copy()

    @property
    def hidden(self) -> np.ndarray:
        """The hidden state (L, H), a writable view of the voice's own memory."""
        return np.ctypeslib.as_array(self.lib.rc_voice_hidden(self.handle), self.model.hidden_shape)

    @property
    def previous(self) -> int:
        """The class fed back at the next step."""
        return self.lib.rc_voice_previous(self.handle)

    @previous.setter
    def previous(self, code: int) -> None:
        if self.lib.rc_voice_set_previous(self.handle, int(code)):
            raise ValueError(f"class {code} is outside 0..{self.model.numtokens - 1}")


def c_model(model: RNN, encode: bool) -> CModel:
    """Return the C runtime's copy of a PyTorch model, through the exported file's bytes."""
    specs = {f"parameter{i}": (0.0, 1.0) for i in range(model.config.cond_size)}  # the binding sets [0, 1] values
    data = AudioDatasetConfig(parameter_specs=specs, encode=encode, numtokens=model.config.numtokens)
    return CModel(model_file_bytes(model, data, source="in memory"))


class CVoices:
    """B voices of the C runtime, seeded like `NumbaVoices` (the same splitmix64 streams), rendered together."""

    compiled = False

    def __init__(self, model: RNN, previous: torch.Tensor, hidden: torch.Tensor, encode: bool, seed: int | None,
                 threads: int | None = None) -> None:
        self.model = c_model(model, encode)
        self.lib, self.threads = self.model.lib, threads
        states = seed_states(seed, len(previous))
        self.voices = [CVoice(self.model, int(state)) for state in states]
        self.handles = np.array([voice.handle for voice in self.voices], dtype=np.uintp)
        hidden = hidden.detach().transpose(0, 1).cpu().numpy()
        for voice, code, state in zip(self.voices, previous.cpu().numpy(), hidden):
            voice.previous = int(code)
            voice.hidden[:] = state
        self._settings: tuple[int | None, float] | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._hidden = [voice.hidden for voice in self.voices]  # views, made once: live play checks them every block

    def __len__(self) -> int:
        return len(self.voices)

    def sample(self, cond: np.ndarray | torch.Tensor, top_n: int | None, temperature: float,
               which: np.ndarray | None = None) -> np.ndarray:
        """Return the next mu-law indices (len(which), T) for cond (len(which), T, P), carrying the voices' state on."""
        cond = np.ascontiguousarray(cond.cpu().numpy() if isinstance(cond, torch.Tensor) else cond, dtype=np.float32)
        self._set(top_n, temperature)
        handles = self.handles if which is None else self.handles[np.asarray(which, dtype=np.int64)]
        codes = np.empty(cond.shape[:2], np.int32)
        threads = max(1, min(len(handles), self.threads or os.cpu_count() or 1))

        def play(group: np.ndarray) -> None:  # one contiguous run of voices, rendered together
            chosen = np.ascontiguousarray(handles[group])
            start = group[0] if len(group) else 0
            self.lib.rc_voices_render(chosen.ctypes.data_as(_HANDLES), len(chosen), cond[start:].ctypes.data,
                                      codes[start:].ctypes.data, None, cond.shape[1])

        if threads == 1:  # live play's case, every block
            play(np.arange(len(handles)))
        else:  # the runtime releases the GIL: the groups render in parallel
            self._pool = self._pool or ThreadPoolExecutor(os.cpu_count() or 1)
            list(self._pool.map(play, np.array_split(np.arange(len(handles)), threads)))
        return codes.astype(np.int64)

    def step(self, x: np.ndarray, which: np.ndarray | None = None) -> np.ndarray:
        """Return the logits (len(which), N) for one teacher-forced input per voice, x (len(which), 1 + P),
        advancing those voices' hidden states (the batched twin of `CVoice.step`)."""
        handles = np.ascontiguousarray(self.handles if which is None else self.handles[np.asarray(which)])
        logits = np.empty((len(handles), self.model.numtokens), np.float32)
        self.lib.rc_voices_step(handles.ctypes.data_as(_HANDLES), len(handles),
                                np.ascontiguousarray(x, dtype=np.float32), logits)
        return logits

    def _set(self, top_n: int | None, temperature: float) -> None:
        if self._settings != (top_n, temperature):  # the same for every call in live play: skip B calls each
            for voice in self.voices:
                voice.set(top_n, temperature)
            self._settings = (top_n, temperature)

    def restart(self, voice: int, random_state: int) -> None:
        """Put `voice` back to silence and a zero hidden state, drawing next from the stream `random_state`."""
        self.voices[voice].restart(random_state)

    def finite(self, which: np.ndarray) -> np.ndarray:
        """Return for each voice in `which` whether its hidden state is finite."""
        return np.array([np.isfinite(self._hidden[b]).all() for b in which], dtype=bool)
