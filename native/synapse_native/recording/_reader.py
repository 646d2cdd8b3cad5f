"""``Recording``: the frames of an MCAP recording in log-time order, and its step index."""

from __future__ import annotations

import bisect
import heapq
import itertools
import os
import struct
from collections.abc import Iterable, Iterator
from pathlib import Path
from types import TracebackType

import numpy as np
from numpy.typing import NDArray

from .._wire import STEP_TYPES
from ._format import METADATA_NAME, STEP_INDEX_NAME, unpack_step_index
from ._scan import ChunkRef, RecordingError, locate, read_attachment, read_chunk

_TYPE = struct.Struct("<H")
_STEP = struct.Struct("<I")


class StepIndex:
    """Step -> log time (ns) of the step's first frame, for every step recorded."""

    def __init__(self, steps: NDArray[np.uint32], times_ns: NDArray[np.uint64]) -> None:
        order = np.argsort(steps, kind="stable")
        self.steps: NDArray[np.uint32] = np.ascontiguousarray(steps[order])
        self.times_ns: NDArray[np.uint64] = np.ascontiguousarray(times_ns[order])
        by_time = np.argsort(self.times_ns, kind="stable")
        self._sorted_times = self.times_ns[by_time]
        self._steps_by_time = self.steps[by_time]

    def __len__(self) -> int:
        return len(self.steps)

    def __contains__(self, step: object) -> bool:
        if not isinstance(step, int | np.integer) or len(self.steps) == 0:
            return False
        i = int(np.searchsorted(self.steps, step))
        return i < len(self.steps) and int(self.steps[i]) == int(step)

    def time_of(self, step: int) -> int:
        """Log time of ``step``'s first frame, or of the last recorded step before it.

        ``KeyError`` for a step before the first recorded one.
        """
        i = int(np.searchsorted(self.steps, step, side="right")) - 1
        if i < 0:
            raise KeyError(f"step {step} is before the first recorded step")
        return int(self.times_ns[i])

    def step_at(self, time_ns: int) -> int | None:
        """The step in progress at ``time_ns`` (the last to start by then), None before any."""
        i = int(np.searchsorted(self._sorted_times, time_ns, side="right")) - 1
        return None if i < 0 else int(self._steps_by_time[i])


class Recording:
    """An MCAP recording opened for reading (``open_recording``); not thread-safe.

    ``metadata`` is the recording's ``synapse`` metadata record. ``damage`` is None for a
    whole file, otherwise what is wrong and what was lost; chunks found damaged while reading
    (a failed CRC) are skipped, listed in ``problems`` and added to ``damage``.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._file = open(self.path, "rb")  # noqa: SIM115 (closed in close())
        try:
            layout = locate(
                self._file, os.fstat(self._file.fileno()).st_size, str(self.path), METADATA_NAME
            )
        except BaseException:
            self._file.close()
            raise
        self.metadata: dict[str, str] = layout.metadata
        self.problems: list[str] = [layout.damage] if layout.damage else []
        self._chunks = sorted(layout.chunks, key=lambda c: (c.start_ns, c.offset))
        # For a time range, the chunks to look at are found by bisection (a long recording
        # has tens of thousands): starts ascending, and the running maximum of the ends.
        self._starts = [c.start_ns for c in self._chunks]
        self._ends_max = list(itertools.accumulate((c.end_ns for c in self._chunks), max))
        self._channel_types = layout.channel_types
        self._attachments = layout.attachments
        self._message_count = layout.message_count
        self._bad: set[int] = set()
        self._step_index: StepIndex | None = None

    @property
    def damage(self) -> str | None:
        """None, or what is wrong with the file and what was lost."""
        return "; ".join(self.problems) if self.problems else None

    @property
    def start_ns(self) -> int | None:
        """Log time of the first frame (None for a recording without frames)."""
        return min((c.start_ns for c in self._chunks), default=None)

    @property
    def end_ns(self) -> int | None:
        """Log time of the last frame."""
        return max((c.end_ns for c in self._chunks), default=None)

    @property
    def frame_count(self) -> int | None:
        """Frames in the file, when its summary says (None for a damaged file)."""
        return self._message_count

    def frames(
        self,
        *,
        start_ns: int | None = None,
        end_ns: int | None = None,
        types: Iterable[int] | None = None,
    ) -> Iterator[tuple[int, bytes]]:
        """(log_time_ns, frame) with ``start_ns <= log_time_ns < end_ns``, in log-time order.

        ``types`` keeps only those message types. Streams: at most the chunks that overlap in
        time are in memory at once.
        """
        wanted = None if types is None else frozenset(int(t) for t in types)
        lo = 0 if start_ns is None else bisect.bisect_left(self._ends_max, start_ns)
        hi = len(self._chunks) if end_ns is None else bisect.bisect_left(self._starts, end_ns)
        chunks = [c for c in self._chunks[lo:hi] if self._may_hold(c, start_ns, end_ns, wanted)]
        heap: list[tuple[int, int, int, bytes]] = []
        next_chunk = 0
        while next_chunk < len(chunks) or heap:
            while next_chunk < len(chunks) and (
                not heap or chunks[next_chunk].start_ns <= heap[0][0]
            ):
                for k, (t, frame) in enumerate(self._read(chunks[next_chunk])):
                    if start_ns is not None and t < start_ns:
                        continue
                    if end_ns is not None and t >= end_ns:
                        break
                    if wanted is None or _TYPE.unpack_from(frame, 6)[0] in wanted:
                        heapq.heappush(heap, (t, next_chunk, k, frame))
                next_chunk += 1
            if heap:
                t, _, _, frame = heapq.heappop(heap)
                yield t, frame

    def step_index(self) -> StepIndex:
        """Step -> first log time, from the file's index or (damaged file) one pass over it."""
        if self._step_index is None:
            self._step_index = self._load_step_index() or self._scan_step_index()
        return self._step_index

    def check(self) -> list[str]:
        """Read every chunk once (decompress, CRC); return ``problems`` (empty when whole)."""
        for chunk in self._chunks:
            self._read(chunk)
        return list(self.problems)

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> Recording:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- internals ------------------------------------------------------------------------------

    def _may_hold(
        self,
        chunk: ChunkRef,
        start_ns: int | None,
        end_ns: int | None,
        wanted: frozenset[int] | None,
    ) -> bool:
        if chunk.offset in self._bad:
            return False
        if start_ns is not None and chunk.end_ns < start_ns:
            return False
        if end_ns is not None and chunk.start_ns >= end_ns:
            return False
        if wanted is None or chunk.channel_ids is None:
            return True
        return any(self._channel_types.get(cid, -1) in wanted for cid in chunk.channel_ids)

    def _read(self, chunk: ChunkRef) -> list[tuple[int, bytes]]:
        if chunk.offset in self._bad:
            return []
        try:
            return read_chunk(self._file, chunk, str(self.path), self._channel_types)
        except RecordingError as exc:
            self._bad.add(chunk.offset)
            origin = self._chunks[0].start_ns
            self.problems.append(
                f"{exc}: the frames logged from {(chunk.start_ns - origin) / 1e9:.1f} s to "
                f"{(chunk.end_ns - origin) / 1e9:.1f} s are skipped"
            )
            return []

    def _load_step_index(self) -> StepIndex | None:
        offset = self._attachments.get(STEP_INDEX_NAME)
        if offset is None or self.damage is not None:
            return None
        try:
            data = read_attachment(self._file, offset, str(self.path))
            return StepIndex(*unpack_step_index(data))
        except (RecordingError, ValueError):
            return None

    def _scan_step_index(self) -> StepIndex:
        first: dict[int, int] = {}
        for chunk in self._chunks:
            for t, frame in self._read(chunk):
                if _TYPE.unpack_from(frame, 6)[0] in STEP_TYPES:
                    step = _STEP.unpack_from(frame, 24)[0]
                    if t < first.get(step, t + 1):
                        first[step] = t
        steps = np.fromiter(first, np.uint32, len(first))
        times = np.fromiter(first.values(), np.uint64, len(first))
        return StepIndex(steps, times)


def open_recording(path: str | os.PathLike[str]) -> Recording:
    """Open an MCAP recording; ``RecordingError`` (naming the offset) if it is not one."""
    return Recording(path)
