"""What the app asked the trainer to change, and what the trainer says is in force."""

from __future__ import annotations

import itertools

from synapse_desktop.models.signal import Signal
from synapse_native.protocol import Control, ControlAck, ControlState


class ControlModel:
    """``request`` emits ``requested(Control)`` for the connection to send; acknowledgements
    (to this app or to another viewer of the same trainer) update ``state`` and fire ``changed``.
    """

    def __init__(self) -> None:
        self.requested = Signal()
        self.changed = Signal()
        self.state: ControlState | None = None
        self.error = ""
        self.pending: dict[int, Control] = {}
        self._ids = itertools.count(1)

    def request(
        self,
        *,
        threshold: float | None = None,
        rate_hz: float | None = None,
        site_kinds: int | None = None,
        paused: bool | None = None,
        top_k: int | None = None,
        threshold_mode: int | None = None,
        budget: float | None = None,
        full_rank: int | None = None,
    ) -> Control:
        """Ask for new settings; they count only once acknowledged."""
        control = Control(
            next(self._ids),
            threshold,
            rate_hz,
            site_kinds,
            paused,
            top_k,
            threshold_mode=threshold_mode,
            budget=budget,
            full_rank=full_rank,
        )
        self.pending[control.request_id] = control
        self.requested.emit(control)
        return control

    def not_sent(self, control: Control) -> None:
        """The connection could not send ``control``."""
        self.pending.pop(control.request_id, None)
        self.error = "not connected: the change was not sent"
        self.changed.emit()

    def acknowledge(self, ack: ControlAck) -> None:
        """Take the trainer's answer (``request_id`` 0: an unsolicited announcement)."""
        self.pending.pop(ack.request_id, None)
        mine = ack.request_id != 0
        self.error = ack.error if mine and not ack.applied else ""
        self.state = ack.state
        self.changed.emit()

    def reset(self) -> None:
        """Forget the trainer's state (a new connection)."""
        self.pending.clear()
        self.state = None
        self.error = ""
        self.changed.emit()
