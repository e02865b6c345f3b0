"""Checks for numbers that come from outside (the command line, Python calls, OSC, MIDI, the widget), in one place.

Each refusal is one line that names where the value came from and says what to give instead.
"""
from __future__ import annotations

import math
import numbers

import numpy as np
import torch

# Below this the PyTorch sampler's logits / temperature overflow float32; top_n=1 is the greedy draw. The C runtime
# refuses the same (RC_MIN_TEMPERATURE in runtime/rnncontrol.h).
MIN_TEMPERATURE = 1e-3
# The networks, the live engine and the C runtime hold values as float32; a finite float64 above this becomes
# infinite there (1e39 as a pitch), so such values are refused as if they were infinite.
FLOAT32_MAX = float(np.finfo(np.float32).max)
# The numba sampler's generator takes seeds of 32 bits (torch's would take 64).
MAX_SEED = 2 ** 32 - 1


def finite_number(name: str, value: object) -> float:
    """Return value as a float, or raise ValueError naming `name` if it is not a number finite in float32."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name}: {value!r} is not a number; give a finite number") from None
    except OverflowError:  # an integer too large for a float
        number = math.inf
    if not math.isfinite(number):
        raise ValueError(f"{name}: {value!r} is not finite; give a finite number")
    if abs(number) > FLOAT32_MAX:
        raise ValueError(f"{name}: {value!r} is beyond float32's range (±{FLOAT32_MAX:.3g}); give a smaller number")
    return number


def setting_in_range(name: str, value: object, low: float, high: float = math.inf) -> float:
    """Return value as a float, or raise ValueError naming `name` unless it is finite in float32 and in [low, high].

    The one check of a setting's number, made where a config is built: so the command line, Python calls and
    config.json refuse the same values.
    """
    number = finite_number(name, value)
    if not low <= number <= high:
        bounds = f"at least {_plain(low)}" if high == math.inf else f"from {_plain(low)} to {_plain(high)}"
        raise ValueError(f"{name} must be {bounds}, got {value!r}")
    return number


def _plain(bound: float) -> str:
    """Return a bound as a reader writes it: 4,294,967,295 and 0.5, not 4.29497e+09."""
    return f"{bound:,.0f}" if float(bound).is_integer() else f"{bound:g}"


def check_finite_array(name: str, values: np.ndarray | torch.Tensor | list[float]) -> None:
    """Raise ValueError naming `name` and the first bad index if the values hold NaN or infinity.

    The samplers would play such input as a constant without complaint (on the numba path, for the rest of the
    voice), so generation and live play refuse it here.
    """
    tensor = values.detach() if isinstance(values, torch.Tensor) else torch.from_numpy(np.asarray(values, float))
    bad = ~torch.isfinite(tensor) | (tensor.abs() > FLOAT32_MAX)
    if bad.any():
        first = tuple(int(i) for i in bad.nonzero()[0])
        raise ValueError(f"{name} holds {int(bad.sum())} NaN or infinite values (the first at index {first}); "
                         "give finite parameter values within float32's range")


def check_sampling_settings(top_n: int | None, temperature: float) -> None:
    """Raise ValueError unless temperature is a finite number >= MIN_TEMPERATURE and top_n is None or >= 0."""
    if not (isinstance(temperature, numbers.Real) and math.isfinite(temperature) and temperature >= MIN_TEMPERATURE):
        raise ValueError(f"temperature (--temperature) must be a finite number of at least {MIN_TEMPERATURE}, got "
                         f"{temperature!r}; use top_n=1 to take the most likely sample every step")
    if top_n is not None and (isinstance(top_n, bool) or not isinstance(top_n, numbers.Integral) or top_n < 0):
        raise ValueError(f"top_n (--top_n) must be a whole number >= 0 (0 or None: draw among all classes), "
                         f"got {top_n!r}")


def available_device(name: str | torch.device) -> torch.device:
    """Return the device `name` (--device) stands for, refusing one torch does not know or this machine lacks."""
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        raise ValueError(f"--device {name!r} is not a device; give cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device {name}: CUDA is not available here (no CUDA GPU, or a PyTorch built without "
                         "CUDA); use --device cpu")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise ValueError(f"--device {name}: this machine has {torch.cuda.device_count()} CUDA GPUs, numbered from 0")
    return device
