"""The learning rate at each batch: constant, or a linear warm-up followed by a cosine decay."""
from __future__ import annotations

import math

SCHEDULES = ("constant", "cosine")


def learning_rate(schedule: str, peak: float, batch: int, total: int, warmup: float, final: float) -> float:
    """Return the rate for batch `batch` (from 0) of `total`.

    "cosine" rises linearly over the first `warmup` share of the batches, then falls along a half cosine to
    `final` times the peak at the last batch. A pure function of the batch, so a resumed run follows it exactly.
    """
    if schedule == "constant":
        return peak
    if schedule != "cosine":
        raise ValueError(f"lr_schedule must be one of {SCHEDULES}, got {schedule!r}")
    warmup_batches = max(1, round(warmup * total))
    if batch < warmup_batches:
        return peak * (batch + 1) / warmup_batches
    progress = (batch - warmup_batches) / max(1, total - 1 - warmup_batches)
    return peak * (final + (1 - final) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))
