"""Calls that would block forever on a bug (a FIFO read), run so that such a bug fails the test instead."""
from __future__ import annotations

import threading
from typing import Callable


def exception_within(call: Callable[[], object], seconds: float = 10.0) -> BaseException | None:
    """Return the exception call() raised (None if none), failing the test if it is still running after `seconds`."""
    outcome = []

    def run() -> None:
        try:
            call()
            outcome.append(None)
        except BaseException as error:  # noqa: BLE001 - handed back to the test
            outcome.append(error)

    thread = threading.Thread(target=run, daemon=True)  # a daemon: a blocked call never holds up the test run
    thread.start()
    thread.join(seconds)
    assert outcome, f"still blocked after {seconds} s"
    return outcome[0]
