"""Stopping a loop from a signal handler without deadlocking it.

A Python signal handler runs on the main thread between two bytecodes. If those are inside the
main thread's own ``event.wait()``, the thread holds the event's lock (a plain, non-reentrant
one), and ``event.set()`` in the handler waits for it forever: a loop that waits on its stop
event with a timeout would then hang on SIGTERM, rarely (seen once in CI). The handlers here set
the event from a new thread, which takes the lock once the main thread lets it go.
"""

from __future__ import annotations

import _thread
import signal
import threading
from collections.abc import Callable, Sequence
from typing import Any


def set_soon(event: threading.Event) -> None:
    """Set ``event`` from a signal handler: on a thread of its own (``_thread`` takes no lock
    on the calling thread, as ``threading.Thread.start`` would)."""
    _thread.start_new_thread(event.set, ())


def on_signals(handler: Callable[[], None], signals: Sequence[int]) -> dict[int, Any]:
    """Route ``signals`` to ``handler`` (main thread only: elsewhere nothing changes); returns
    the previous handlers, for ``restore``."""
    if threading.current_thread() is not threading.main_thread():
        return {}
    return {signum: signal.signal(signum, lambda *_: handler()) for signum in signals}


def set_on_signals(event: threading.Event, signals: Sequence[int]) -> dict[int, Any]:
    """Make ``signals`` set ``event`` (``on_signals``)."""
    return on_signals(lambda: set_soon(event), signals)


def restore(previous: dict[int, Any]) -> None:
    """Give the signals in ``previous`` their handlers back."""
    for signum, handler in previous.items():
        signal.signal(signum, handler)
