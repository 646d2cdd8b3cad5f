"""The trainer's actions (ACTION_LIST), this app's requests to run them, and their results."""

from __future__ import annotations

import itertools

from synapse_desktop.models.signal import Signal
from synapse_native.protocol import ActionRequest, ActionResult, ActionStatus


class ActionsModel:
    """``names``: what the trainer offers; ``request`` emits ``requested(ActionRequest)`` for
    the connection to send; ``take`` records an ACTION_RESULT. ``changed`` fires on each."""

    def __init__(self) -> None:
        self.requested = Signal()
        self.changed = Signal()
        self.names: tuple[str, ...] = ()
        self.pending: dict[int, ActionRequest] = {}
        self.status = ""  # one line about the last result, for people
        self._ids = itertools.count(1)

    def offer(self, names: tuple[str, ...]) -> None:
        if names != self.names:
            self.names = names
            self.changed.emit()

    def request(self, name: str) -> ActionRequest:
        request = ActionRequest(next(self._ids), name)
        self.pending[request.request_id] = request
        self.status = f"{name}: asked, runs at the trainer's next step"
        self.requested.emit(request)
        self.changed.emit()
        return request

    def not_sent(self, request: ActionRequest) -> None:
        self.pending.pop(request.request_id, None)
        self.status = f"{request.name}: not sent, not connected"
        self.changed.emit()

    def take(self, result: ActionResult) -> None:
        request = self.pending.pop(result.request_id, None)
        name = request.name if request is not None else f"request {result.request_id}"
        if result.status == ActionStatus.DONE:
            said = f": {result.text}" if result.text else ""
            self.status = f"{name} done at step {result.step}{said}"
        else:
            kind = (
                result.status.name.lower()
                if isinstance(result.status, ActionStatus)
                else f"status {result.status}"
            )
            self.status = f"{name} {kind}: {result.text}"
        self.changed.emit()

    def clear(self) -> None:
        """A new connection: the trainer will say what it offers."""
        self.names = ()
        self.pending.clear()
        self.changed.emit()
