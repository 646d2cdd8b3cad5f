"""A server that keeps what the probe sends as decoded frames, in process: every message is
encoded and decoded as on the wire, and no socket is opened (``attach(server=LoopbackServer())``).

Tests and benchmarks use it to feed a run's exact frame stream to the app's models without a
network, a viewer or a dropped frame.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

from synapse_native.protocol import (
    ControlState,
    Frame,
    HeaderFlag,
    Message,
    ModelMeta,
    decode_frame,
    encode,
)


class LoopbackServer:
    """Frames in arrival order; ``take`` hands over those not taken yet."""

    def __init__(self) -> None:
        self._frames: list[Frame] = []
        self._lock = threading.Lock()
        self._seq = 0
        self.closed = False

    def broadcast(self, message: Message, *, step: int, flags: int = 0) -> bool:
        with self._lock:
            self._seq += 1
            frame = decode_frame(encode(message, seq=self._seq, step=step, flags=flags))
            if frame is not None:
                self._frames.append(frame)
        return True

    def broadcast_step(self, messages: Sequence[Message], *, step: int) -> int:
        for i, message in enumerate(messages):
            last = i == len(messages) - 1
            self.broadcast(message, step=step, flags=int(HeaderFlag.END_OF_STEP) if last else 0)
        return len(messages)

    def set_meta(self, meta: ModelMeta) -> None:
        frame = decode_frame(encode(meta))
        with self._lock:
            if frame is not None:
                self._frames.append(frame)

    def poll_control(self) -> ControlState | None:
        return None

    def report_stats(self, probe_ns: int, steps_sampled: int, steps_seen: int) -> bool:
        return True

    def take(self) -> list[Frame]:
        """The frames received since the last call, oldest first."""
        with self._lock:
            frames, self._frames = self._frames, []
        return frames

    def close(self) -> None:
        self.closed = True
