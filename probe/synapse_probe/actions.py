"""Trainer actions: functions the training script offers to viewers (``probe.on_request``).

Requests arrive on the server's event thread (``request``) and wait in a short queue; the
training thread runs them at its next step boundary (``run``), never in between, and each
viewer that asked hears how it went (ACTION_RESULT).
"""

from __future__ import annotations

import collections
import logging
import threading
from collections.abc import Callable

from synapse_native.protocol import (
    MAX_ACTIONS,
    MAX_TEXT,
    ActionRequest,
    ActionResult,
    ActionStatus,
    ProtocolError,
    check_action_name,
)

log = logging.getLogger(__name__)

MAX_WAITING = 16  # requests waiting for a step boundary; beyond, they are refused

Reply = Callable[[int, ActionResult], object]  # (client id, result): sent to that viewer


class TrainerActions:
    """The registered actions and the requests waiting for a step boundary."""

    def __init__(self, reply: Reply) -> None:
        self._reply = reply
        self._actions: dict[str, Callable[[], object]] = {}
        self._waiting: collections.deque[tuple[int, ActionRequest]] = collections.deque()
        self._lock = threading.Lock()

    @property
    def names(self) -> list[str]:
        return list(self._actions)

    def add(self, name: str, fn: Callable[[], object]) -> None:
        """Offer ``fn`` as ``name`` (1 to 64 bytes of UTF-8, no line feed; at most 32)."""
        try:
            check_action_name(name)
        except ProtocolError as exc:
            raise ValueError(str(exc)) from None
        if not callable(fn):
            raise TypeError(f"the action {name!r} must be callable, got {fn!r}")
        if name not in self._actions and len(self._actions) >= MAX_ACTIONS:
            raise ValueError(f"at most {MAX_ACTIONS} actions can be offered")
        self._actions[name] = fn

    # -- the server's event thread ----------------------------------------------------------

    def request(self, client_id: int, request: ActionRequest) -> ActionResult | None:
        """Queue ``request`` for the next step boundary, or the answer to send at once."""
        if request.name not in self._actions:
            text = f"no action named {request.name!r} (offered: {', '.join(self._actions)})"
            return ActionResult(request.request_id, ActionStatus.UNKNOWN, text=_clip(text))
        with self._lock:
            if len(self._waiting) >= MAX_WAITING:
                text = f"{MAX_WAITING} requests already wait for the next step; try again"
                return ActionResult(request.request_id, ActionStatus.REFUSED, text=text)
            self._waiting.append((client_id, request))
        return None

    # -- the training thread ----------------------------------------------------------------

    def run(self, step: int) -> None:
        """Run the waiting requests, in order, and answer each (a step boundary)."""
        if not self._waiting:
            return
        with self._lock:
            waiting, self._waiting = self._waiting, collections.deque()
        for client_id, request in waiting:
            fn = self._actions[request.name]
            try:
                value = fn()
            except Exception as exc:  # the viewer hears why; training goes on
                log.warning("action %r failed: %s", request.name, exc)
                text, status = f"{type(exc).__name__}: {exc}", ActionStatus.FAILED
            else:
                text, status = "" if value is None else str(value), ActionStatus.DONE
            self._reply(client_id, ActionResult(request.request_id, status, step, _clip(text)))


def _clip(text: str) -> str:
    raw = text.encode("utf-8")
    return text if len(raw) <= MAX_TEXT else raw[: MAX_TEXT - 3].decode("utf-8", "ignore") + "..."
