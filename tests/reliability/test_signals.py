"""A stop signal never deadlocks the loop it stops: the handler runs on the main thread, possibly
while that thread holds its stop event's lock inside ``event.wait()``."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading

import pytest

from synapse_serve.signals import set_on_signals

# The signal arrives while the main thread holds the event's lock, as between two bytecodes of
# ``Event.wait``; a handler that called ``event.set()`` itself would wait for that lock forever.
SCRIPT = """
import signal, threading
from synapse_serve.signals import restore, set_on_signals
stop = threading.Event()
previous = set_on_signals(stop, (signal.SIGTERM,))
with stop._cond:
    signal.raise_signal(signal.SIGTERM)
print("stopped" if stop.wait(5) else "not set")
restore(previous)
print(signal.getsignal(signal.SIGTERM) == signal.SIG_DFL)
"""


@pytest.mark.skipif(os.name != "posix", reason="POSIX signals")
def test_a_signal_that_comes_inside_the_wait_stops_the_loop() -> None:
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=30, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["stopped", "True"]


def test_off_the_main_thread_nothing_is_installed() -> None:
    seen: list[dict[int, object]] = []
    stop = threading.Event()
    thread = threading.Thread(target=lambda: seen.append(set_on_signals(stop, [signal.SIGTERM])))
    thread.start()
    thread.join()
    assert seen == [{}]
