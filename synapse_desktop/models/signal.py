"""A tiny synchronous signal: models announce changes, views and widgets listen.

Bound methods are held weakly, so a widget that goes away stops listening without a
``disconnect``; plain functions and lambdas are held strongly.
"""

from __future__ import annotations

import inspect
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

Callback = Callable[..., object]


class Signal:
    """Calls every connected callback, in connection order, with the emitted arguments."""

    __slots__ = ("_blocked", "_slots")

    def __init__(self) -> None:
        self._slots: list[weakref.WeakMethod[Callback] | Callback] = []
        self._blocked = 0

    def connect(self, callback: Callback) -> Callback:
        """Call ``callback`` on every emit; returns it, so this works as a decorator."""
        ref: weakref.WeakMethod[Callback] | Callback
        ref = weakref.WeakMethod(callback) if inspect.ismethod(callback) else callback
        self._slots.append(ref)
        return callback

    def disconnect(self, callback: Callback) -> None:
        """Stop calling ``callback`` (no error if it was not connected)."""
        self._slots = [s for s in self._slots if _resolve(s) not in (None, callback)]

    def emit(self, *args: Any) -> None:
        """Call the callbacks now, unless the signal is blocked."""
        if self._blocked:
            return
        dead = False
        for slot in tuple(self._slots):
            callback = _resolve(slot)
            if callback is None:
                dead = True
                continue
            callback(*args)
        if dead:
            self._slots = [s for s in self._slots if _resolve(s) is not None]

    @contextmanager
    def blocked(self) -> Iterator[None]:
        """Emits inside the block are dropped."""
        self._blocked += 1
        try:
            yield
        finally:
            self._blocked -= 1

    def __len__(self) -> int:
        return sum(_resolve(s) is not None for s in self._slots)


def _resolve(slot: weakref.WeakMethod[Callback] | Callback) -> Callback | None:
    if isinstance(slot, weakref.WeakMethod):
        return slot()
    return slot
