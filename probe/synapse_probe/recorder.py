"""``attach(record=...)``: the probe's own recording, written on the encoder thread.

A server tap (called under the publisher's lock, possibly on the training thread) only queues
the broadcast frames, within a byte budget (beyond it, frames are dropped and counted); the
encoder thread drains the queue into a ``RecordingWriter`` after each item it encodes, so
compression and file writes never run on the training thread. A write that fails (a full
disk) stops the recording: logged once, every frame after it counted in ``lost``, training on.
"""

from __future__ import annotations

import collections
import logging
import os
import threading
from collections.abc import Sequence

from synapse_native.recording import RecordingWriter, Thinner

log = logging.getLogger(__name__)

QUEUE_BYTES = 64 << 20  # frames waiting for the encoder thread


class FrameRecorder:
    """Records every frame the probe broadcasts to ``path`` (MCAP, docs/RECORDING.md)."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        model: str,
        max_mb: float | None = None,
        sparse_hz: float | None = None,
        pattern_hz: float | None = None,
        queue_bytes: int = QUEUE_BYTES,
    ) -> None:
        metadata = {"model": model, "source": "attach(record=...)"}
        if sparse_hz is not None:
            metadata["sparse_hz"] = str(sparse_hz)
        if pattern_hz is not None:
            metadata["pattern_hz"] = str(pattern_hz)
        max_bytes = None if max_mb is None else int(max_mb * (1 << 20))
        self._thinner = Thinner(sparse_hz, pattern_hz)
        self._writer = RecordingWriter(path, metadata=metadata, max_bytes=max_bytes)
        self._queue: collections.deque[bytes] = collections.deque()
        self._queued_bytes = 0
        self._queue_limit = queue_bytes
        self._lock = threading.Lock()
        self._failed = False
        self.dropped = 0  # frames the queue could not take (the encoder thread fell behind)
        self.lost = 0  # frames not recorded because writing the file failed

    @property
    def writer(self) -> RecordingWriter:
        return self._writer

    def tap(self, frames: Sequence[bytes]) -> None:
        """Queue ``frames`` (a server tap): never waits, drops and counts beyond the budget."""
        with self._lock:
            if self._failed:
                self.lost += len(frames)
                return
            for frame in frames:
                if self._queued_bytes + len(frame) > self._queue_limit:
                    self.dropped += 1
                    continue
                self._queue.append(frame)
                self._queued_bytes += len(frame)

    def drain(self) -> None:
        """Write what is queued (the encoder thread only)."""
        with self._lock:
            frames = list(self._queue)
            self._queue.clear()
            self._queued_bytes = 0
            if self._failed:
                self.lost += len(frames)
                return
        if not frames:
            return
        try:
            self._writer.write_frames(self._thinner.filter(frames))
        except OSError as exc:  # a full disk must not end training
            with self._lock:
                self._failed = True
                self.lost += len(frames)
            log.error(
                "synapse recording to %s stopped (training goes on): %s; the file holds what "
                "was written before",
                self._writer.path,
                exc.strerror or exc,
            )

    def close(self) -> None:
        """Write what is left and finish the file (once the encoder thread has stopped)."""
        self.drain()
        try:
            self._writer.close()
        except OSError as exc:
            if not self._failed:  # else already said
                log.error("synapse recording to %s not closed cleanly: %s", self._writer.path, exc)
        log.info(
            "synapse recording: %d frames, %.1f MB in %s; %d not recorded",
            self._writer.frames_written,
            self._writer.bytes_written / 1e6,
            ", ".join(str(p) for p in self._writer.paths),
            self.lost + self.dropped,
        )
