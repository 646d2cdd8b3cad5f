"""The frames a live session received, kept in memory (bounded) so the timeline can go back.

Frames are kept whole, as they came off the wire, with their step read from the header; the
oldest go first once ``max_bytes`` is reached. ``window`` hands back the frames of a range of
steps in stream order, which is what ``models.replay.Replay`` applies to seek.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Sequence

from synapse_native.protocol import HEADER_SIZE, STEP_TYPES, MsgType, header_fields

DEFAULT_MAX_BYTES = 512 * 1024 * 1024
_META = int(MsgType.MODEL_META)


def frame_type(frame: bytes) -> int:
    """The message type of a whole frame (0 for a frame shorter than a header)."""
    return header_fields(frame).msg_type if len(frame) >= HEADER_SIZE else 0


def frame_step(frame: bytes) -> int:
    """The step in a whole frame's header (0 for a frame shorter than a header)."""
    return header_fields(frame).step if len(frame) >= HEADER_SIZE else 0


class FrameLog:
    """Whole frames in arrival order, their steps, and the MODEL_META in force.

    Frames are looked up by the running maximum of the measured steps (``STEP_TYPES``), so
    frames without a step of their own (HELLO, MODEL_META, CONTROL_ACK) stay where they came
    in the stream.
    """

    def __init__(self, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        if max_bytes <= 0:
            raise ValueError(f"max_bytes must be positive, got {max_bytes}")
        self.max_bytes = max_bytes
        self._metas: list[tuple[int, bytes]] = []  # (frame position, MODEL_META frame)
        self.clear()

    def clear(self) -> None:
        """Forget every frame (a new run); the MODEL_META in force is kept."""
        self._frames: list[bytes] = []
        self._keys: list[int] = []  # running maximum of the steps, one per frame
        self._steps: list[int] = []  # the distinct steps, ascending
        self._times: list[int] = []  # the header timestamp of each step's first frame
        self._head = 0  # frames before it are gone
        self._bytes = 0
        self._metas = [(0, meta) for _, meta in self._metas[-1:]]

    def __len__(self) -> int:
        return len(self._frames) - self._head

    @property
    def nbytes(self) -> int:
        return self._bytes

    def append(self, frames: Sequence[bytes]) -> None:
        """Keep ``frames`` (in stream order), dropping the oldest beyond ``max_bytes``."""
        top = self._keys[-1] if self._keys else -1
        for frame in frames:
            kind = frame_type(frame)
            if kind == _META:
                self._metas.append((len(self._frames), bytes(frame)))
                del self._metas[:-8]
            elif kind in STEP_TYPES:
                step = frame_step(frame)
                if step > top:
                    top = step
                    self._steps.append(step)
                    self._times.append(int.from_bytes(frame[16:24], "little"))
            self._frames.append(frame)
            self._keys.append(top)
            self._bytes += len(frame)
        while self._bytes > self.max_bytes and len(self) > 1:
            self._bytes -= len(self._frames[self._head])
            self._frames[self._head] = b""
            self._head += 1
        self._trim()

    def steps(self) -> Sequence[int]:
        """The steps held, ascending."""
        return self._steps

    def window(self, first: int, last: int) -> list[bytes]:
        """The frames from the one that brought step ``first`` to the last of step ``last``."""
        start = bisect_left(self._keys, first, self._head)
        end = bisect_right(self._keys, last, self._head)
        return self._frames[start:end]

    def meta(self, step: int) -> bytes | None:
        """The MODEL_META in force before the first frame of ``step`` (None: none seen)."""
        at = bisect_left(self._keys, step, self._head)
        found = None
        for position, meta in self._metas:
            if position <= at:
                found = meta
        return found

    def rate(self) -> float:
        """Steps per second as the trainer sent them (0: unknown)."""
        if len(self._steps) < 2 or self._times[-1] <= self._times[0]:
            return 0.0
        return (len(self._steps) - 1) / ((self._times[-1] - self._times[0]) / 1e9)

    def _trim(self) -> None:
        """Compact once half the list is gone, and forget steps no frame holds any more."""
        if self._head and self._head * 2 >= len(self._frames):
            del self._frames[: self._head]
            del self._keys[: self._head]
            self._metas = [(max(0, p - self._head), m) for p, m in self._metas]
            while len(self._metas) > 1 and self._metas[1][0] == 0:
                del self._metas[0]
            self._head = 0
        if self._keys and self._steps and self._steps[0] < self._keys[self._head]:
            gone = bisect_left(self._steps, self._keys[self._head])
            del self._steps[:gone]
            del self._times[:gone]
