"""The captures this app asked trainers for, and their answers (CAPTURE_REQUEST / CAPTURE_DONE)."""

from __future__ import annotations

import itertools
from pathlib import Path

from synapse_desktop.models.signal import Signal
from synapse_native.protocol import CaptureDone, CaptureRequest, CaptureStatus


class CaptureModel:
    """``request`` emits ``requested(CaptureRequest)`` for the connection to send; the trainer's
    CAPTURE_DONE (``take``) updates ``status`` and fires ``done(CaptureDone)`` and ``changed``.
    """

    def __init__(self) -> None:
        self.requested = Signal()
        self.done = Signal()
        self.changed = Signal()
        self.pending: dict[int, CaptureRequest] = {}
        self.last: CaptureDone | None = None
        self.status = ""  # one line for the status bar
        self._ids = itertools.count(1)

    def request(self, site_ids: list[int], names: list[str] | None = None) -> CaptureRequest:
        """Ask the trainer to capture ``site_ids`` at its next step."""
        request = CaptureRequest(next(self._ids), tuple(site_ids))
        self.pending[request.request_id] = request
        what = ", ".join(names) if names else f"{len(site_ids)} site(s)"
        self.status = f"capture of {what} requested"
        self.requested.emit(request)
        self.changed.emit()
        return request

    def not_sent(self, request: CaptureRequest) -> None:
        """The connection could not send ``request``."""
        self.pending.pop(request.request_id, None)
        self.status = "capture not sent: not connected"
        self.changed.emit()

    def take(self, done: CaptureDone) -> None:
        """The trainer's answer to one of this app's requests."""
        self.pending.pop(done.request_id, None)
        self.last = done
        self.status = describe(done)
        self.done.emit(done)
        self.changed.emit()

    @property
    def in_flight(self) -> bool:
        return bool(self.pending)


def describe(done: CaptureDone) -> str:
    """One line for people: where the capture is, or why there is none."""
    if done.status == CaptureStatus.WRITTEN:
        return (
            f"capture of step {done.step} written: {done.path} "
            f"({done.sites} site{'' if done.sites == 1 else 's'}, {done.size / (1 << 20):.1f} MiB)"
        )
    name = done.status.name if isinstance(done.status, CaptureStatus) else f"status {done.status}"
    return f"capture refused ({name.lower().replace('_', ' ')}): {done.text}"


def local_path(done: CaptureDone) -> Path | None:
    """The capture file when it is on this machine (a local trainer), else None."""
    if done.status != CaptureStatus.WRITTEN or not done.path:
        return None
    path = Path(done.path)
    return path if path.is_file() else None
