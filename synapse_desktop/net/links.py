"""The connections to several endpoints (one per rank), feeding one ``Session``."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from PySide6.QtCore import QObject, QTimer

from synapse_desktop.models.connection import LinkStates, Phase
from synapse_desktop.models.ordering import Skipped
from synapse_desktop.models.session import Session
from synapse_desktop.models.sparse import SparseRun
from synapse_desktop.net.client import TICK_MS, Batch, Client
from synapse_desktop.net.endpoint import Endpoint
from synapse_native.protocol import (
    ActionRequest,
    Capability,
    CaptureRequest,
    Control,
    Frame,
    encode,
)


class Links(QObject):
    """One ``Client`` per endpoint, driven by one display-rate timer.

    A tick drains every client and applies what they read as one batch, so the session
    notifies once per tick whatever the number of ranks. Each endpoint's state is kept apart
    (``LinkStates``) and summed up in ``session.connection``. A CONTROL request goes to every
    live endpoint: a threshold change applies to all ranks.
    """

    def __init__(self, session: Session, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.clients: list[Client] = []
        self.states: LinkStates | None = None
        self._batch: list[Frame | Skipped | SparseRun] = []
        self.sink: Callable[[Batch], object] = session.apply_frames  # where a tick's batch goes
        self.raw_sink: Callable[[list[bytes]], object] | None = None  # whole frames as read
        self._timer = QTimer(self)
        self._timer.setInterval(TICK_MS)
        self._timer.timeout.connect(self.tick)
        session.control.requested.connect(self._send_control)
        session.captures.requested.connect(self._send_capture)
        session.actions.requested.connect(self._send_action)

    def open(self, endpoints: Sequence[Endpoint], token: str | None = None) -> None:
        """Connect to every endpoint (dropping the current ones) and keep reconnecting."""
        if not endpoints:
            raise ValueError("no endpoint to connect to")
        self.close()
        self.states = LinkStates(self.session.connection, [str(e) for e in endpoints])
        for state in self.states.parts:
            client = Client(self.session, self, connection=state, driven=True)
            client.sink = self._collect
            client.raw_sink = self._raw
            self.clients.append(client)
        for client, endpoint in zip(self.clients, endpoints, strict=True):
            client.open(endpoint, token)
        self._timer.start()

    def close(self) -> None:
        """Disconnect from every endpoint and stop reconnecting."""
        self._timer.stop()
        for client in self.clients:
            client.close()
            client.deleteLater()
        self.clients = []
        self.states = None
        self._batch.clear()
        self.session.connection.set(
            phase=Phase.IDLE, reason="", retry_at=None, peer="", rank=-1, links=()
        )

    @property
    def live(self) -> int:
        """How many endpoints are live."""
        return sum(client.live for client in self.clients)

    def tick(self) -> None:
        """Progress every connection; apply what they read as one batch."""
        for client in self.clients:
            client.tick()
        if self._batch:
            batch, self._batch = self._batch, []
            self.sink(batch)

    def _collect(self, frames: Batch) -> None:
        self._batch.extend(frames)

    def _raw(self, frames: list[bytes]) -> None:
        if self.raw_sink is not None:
            self.raw_sink(frames)

    def _send_action(self, request: ActionRequest) -> None:
        """To the first live trainer that offers actions (the script's own, run once)."""
        frame = encode(request)
        for client in self.clients:
            offers = client.connection.status.capabilities & Capability.ACTIONS
            if client.live and offers and client.send(frame):
                return
        self.session.actions.not_sent(request)

    def _send_capture(self, request: CaptureRequest) -> None:
        """To every live trainer that captures (each writes its own rank's tensors)."""
        frame = encode(request)
        capturing = [
            client
            for client in self.clients
            if client.live and client.connection.status.capabilities & Capability.CAPTURE
        ]
        if not any([client.send(frame) for client in capturing]):
            self.session.captures.not_sent(request)

    def _send_control(self, control: Control) -> None:
        frame = encode(control)
        sent = [client.send(frame) for client in self.clients if client.live]
        if not any(sent):
            self.session.control.not_sent(control)
