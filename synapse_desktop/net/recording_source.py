"""A recording on disk as a ``FrameSource``: its steps (from the step index), the frames of a
range of steps (from the MCAP chunks that hold them), and the MODEL_META in force."""

from __future__ import annotations

import os
from bisect import bisect_left, bisect_right
from collections.abc import Generator, Iterable, Iterator, Sequence
from pathlib import Path

from synapse_desktop.models.frame_log import frame_type
from synapse_native.protocol import MsgType
from synapse_native.recording import RecordingError, open_recording

__all__ = ["RecordingError", "RecordingSource"]

_META = int(MsgType.MODEL_META)
SCAN_BATCH = 32  # frames per ``scan`` item: a few steps (the GUI thread indexes in slices)


class RecordingSource:
    """Reads one recording (``docs/RECORDING.md``); raises ``RecordingError`` if it cannot."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.recording = open_recording(self.path)
        index = self.recording.step_index()
        self._steps: list[int] = index.steps.tolist()
        self._times: list[int] = index.times_ns.tolist()
        self._metas: list[tuple[int, bytes]] = []  # (log time, MODEL_META), ascending
        for time_ns, frame in self.recording.frames(types=(_META,)):
            self._metas.append((time_ns, bytes(frame)))
            break

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def damage(self) -> str | None:
        """Why the recording is incomplete (a killed writer), or None."""
        damage = self.recording.damage
        return None if damage is None else str(damage)

    def close(self) -> None:
        self.recording.close()

    def steps(self) -> Sequence[int]:
        return self._steps

    def window(self, first: int, last: int) -> Iterator[bytes]:
        i = bisect_left(self._steps, first)
        j = bisect_right(self._steps, last)
        if i >= len(self._steps) or j <= i:
            return
        start = min(self._times[i:j])
        end = self._times[j] if j < len(self._times) else None
        for _, frame in self.recording.frames(start_ns=start, end_ns=end):
            yield frame

    def meta(self, step: int) -> bytes | None:
        i = bisect_left(self._steps, step)
        at = self._times[min(i, len(self._times) - 1)] if self._times else 0
        found = self._metas[0][1] if self._metas else None
        for time_ns, meta in self._metas:
            if time_ns <= at:
                found = meta
        return found

    def rate(self) -> float:
        """Steps per second as recorded (0: unknown)."""
        if len(self._steps) < 2 or self._times[-1] <= self._times[0]:
            return 0.0
        return (len(self._steps) - 1) / ((self._times[-1] - self._times[0]) / 1e9)

    def scan(
        self, types: Iterable[int] | None = None
    ) -> Generator[tuple[float, list[bytes]], None, None]:
        """Every frame (of ``types``; MODEL_META always), in batches: (the fraction of the
        run read, the batch). Each MODEL_META met is remembered for ``meta``. Reads through a
        reader of its own, so seeks may come between two batches."""
        wanted = None if types is None else {*types, _META}
        batch: list[bytes] = []
        recording = open_recording(self.path)
        first = self._times[0] if self._times else 0
        span = max(1, (self._times[-1] - first) if self._times else 1)
        seen = {meta for _, meta in self._metas}
        try:
            yield from self._scan(recording.frames(types=wanted), batch, first, span, seen)
        finally:
            recording.close()

    def _scan(
        self,
        frames: Iterator[tuple[int, bytes]],
        batch: list[bytes],
        first: int,
        span: int,
        seen: set[bytes],
    ) -> Iterator[tuple[float, list[bytes]]]:
        for time_ns, frame in frames:
            if frame_type(frame) == _META and frame not in seen:
                seen.add(bytes(frame))
                self._metas.append((time_ns, bytes(frame)))
                self._metas.sort(key=lambda m: m[0])
            batch.append(frame)
            if len(batch) >= SCAN_BATCH:
                yield min(1.0, (time_ns - first) / span), batch
                batch = []
        yield 1.0, batch
