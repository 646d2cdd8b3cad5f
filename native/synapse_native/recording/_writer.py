"""``RecordingWriter``: wire frames into an MCAP file, one channel per (rank, message type)."""

from __future__ import annotations

import datetime
import os
import socket
import time
from array import array
from bisect import bisect_left
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import numpy as np
from mcap.writer import CompressionType, Writer

from .. import __version__
from .._decode import decode_frame
from .._wire import STEP_TYPES, VERSION, MsgType
from ._format import (
    MAX_CHUNK_SIZE,
    MESSAGE_ENCODING,
    METADATA_NAME,
    PROFILE,
    STEP_INDEX_MEDIA_TYPE,
    STEP_INDEX_NAME,
    frame_key,
    pack_step_index,
    topic,
)

_COMPRESSIONS = {
    "zstd": CompressionType.ZSTD,
    "lz4": CompressionType.LZ4,
    "none": CompressionType.NONE,
}
# Frames that set the state later frames are read against: each part of a rotated recording
# starts with the latest of each (per rank), so every file reads on its own.
_IN_FORCE = (int(MsgType.HELLO), int(MsgType.MODEL_META), int(MsgType.CONTROL_ACK))


class StepIndex:
    """The first log time of each step, kept as two flat arrays (12 bytes a step, u32 step and
    u64 time; a part's index grows by that much per step). Steps arrive mostly ascending; an
    older step is inserted in place."""

    def __init__(self) -> None:
        self.steps = array("I")
        self.times = array("Q")

    def __len__(self) -> int:
        return len(self.steps)

    def add(self, step: int, log_time: int) -> None:
        steps = self.steps
        if not steps or step > steps[-1]:
            steps.append(step)
            self.times.append(log_time)
            return
        i = bisect_left(steps, step)
        if steps[i] == step:
            self.times[i] = min(self.times[i], log_time)
        else:
            steps.insert(i, step)
            self.times.insert(i, log_time)


def part_path(path: Path, part: int) -> Path:
    """File ``part`` (from 1) of a rotated recording: ``run.mcap``, ``run-0002.mcap``..."""
    return path if part == 1 else path.with_name(f"{path.stem}-{part:04d}{path.suffix}")


class RecordingWriter:
    """Writes whole wire frames to an MCAP recording (``docs/RECORDING.md``).

    Thread-confined: one thread calls every method. ``log_time`` is the frame header's
    timestamp unless given. A chunk is written out when it holds ``chunk_size`` bytes or is
    ``flush_interval_s`` old, so a killed writer loses at most that much. With ``max_bytes``
    the recording rotates to ``NAME-0002.mcap``... once a file reaches that size.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        metadata: dict[str, str] | None = None,
        compression: str = "zstd",
        chunk_size: int = 1 << 20,
        max_bytes: int | None = None,
        flush_interval_s: float = 1.0,
    ) -> None:
        if compression not in _COMPRESSIONS:
            raise ValueError(
                f"compression must be one of {sorted(_COMPRESSIONS)}, not {compression!r}"
            )
        if not 0 < chunk_size <= MAX_CHUNK_SIZE:
            raise ValueError(f"chunk_size must be in 1..{MAX_CHUNK_SIZE}, not {chunk_size}")
        if max_bytes is not None and max_bytes < 2 * chunk_size:
            raise ValueError(
                f"max_bytes ({max_bytes}) must be at least twice chunk_size ({chunk_size})"
            )
        self._base = Path(path)
        self._compression = _COMPRESSIONS[compression]
        self._chunk_size = chunk_size
        self._max_bytes = max_bytes
        self._flush_interval_ns = int(flush_interval_s * 1e9)
        self._given = dict(metadata or {})
        self._given.setdefault("host", socket.gethostname())
        self._given.setdefault(
            "start_time", datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
        )
        self._given.setdefault("protocol_version", str(VERSION))
        self._given.setdefault("writer", f"synapse_native {__version__}")
        self.frames_written = 0
        self._closed_bytes = 0
        self._part = 0
        self._in_force: dict[tuple[int, int], tuple[bytes, int]] = {}
        self._closed = False
        self._open_part()

    # -- public -------------------------------------------------------------------------------

    @property
    def path(self) -> Path:
        """The file being written (changes on rotation)."""
        return part_path(self._base, self._part)

    @property
    def paths(self) -> list[Path]:
        """Every file of this recording so far, in order."""
        return [part_path(self._base, p) for p in range(1, self._part + 1)]

    @property
    def bytes_written(self) -> int:
        """Bytes in the recording's files so far (chunks still in memory not counted)."""
        return self._closed_bytes + (0 if self._file.closed else self._file.tell())

    def write_frame(self, frame: bytes, *, log_time_ns: int | None = None) -> None:
        """Record one whole wire frame; ``ProtocolError`` if ``frame`` is not one."""
        self._write(frame, log_time_ns)
        self._after_batch()

    def write_frames(self, frames: Iterable[bytes]) -> None:
        """Record frames in order, each at its header's timestamp."""
        for frame in frames:
            self._write(frame, None)
        self._after_batch()

    def flush(self) -> None:
        """Write out the chunk being built, whatever its age and size."""
        self._finalize_chunk()
        self._file.flush()

    def close(self) -> None:
        """Finish the file (summary section, step index); idempotent."""
        if self._closed:
            return
        self._closed = True
        self._finish_part()

    def __enter__(self) -> RecordingWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- parts --------------------------------------------------------------------------------

    def _open_part(self) -> None:
        self._part += 1
        self._file: IO[bytes] = open(self.path, "wb")  # noqa: SIM115 (closed in _finish_part)
        self._mcap = Writer(self._file, chunk_size=self._chunk_size, compression=self._compression)
        self._mcap.start(profile=PROFILE, library=f"synapse_native {__version__}")
        self._channels: dict[tuple[int, int], int] = {}
        self._steps = StepIndex()
        self._chunk_started_ns: int | None = None
        self._chunk_started_at = 0
        self._metadata_written = False
        if self._part > 1:
            self._given["part"] = str(self._part)
            for (rank, msg_type), (frame, log_time) in sorted(self._in_force.items()):
                self._add(rank, msg_type, frame, log_time)

    def _finish_part(self) -> None:
        try:
            self._write_metadata()
            if self._steps:
                steps = np.frombuffer(self._steps.steps, np.uint32)
                times = np.frombuffer(self._steps.times, np.uint64)
                self._mcap.add_attachment(
                    create_time=time.time_ns(),
                    log_time=int(times.min()),
                    name=STEP_INDEX_NAME,
                    media_type=STEP_INDEX_MEDIA_TYPE,
                    data=pack_step_index(steps, times),
                )
            self._mcap.finish()  # type: ignore[no-untyped-call]
        finally:  # a full disk: the file still closes (close() raises, the fd is released)
            self._closed_bytes += self._file.tell()
            self._file.close()

    # -- frames -------------------------------------------------------------------------------

    def _write(self, frame: bytes, log_time_ns: int | None) -> None:
        rank, msg_type, step, timestamp_ns = frame_key(frame)
        log_time = timestamp_ns if log_time_ns is None else log_time_ns
        if msg_type in _IN_FORCE:
            self._in_force[(rank, msg_type)] = (bytes(frame), log_time)
            self._learn(frame, msg_type)
        self._add(rank, msg_type, frame, log_time)
        if msg_type in STEP_TYPES:
            self._steps.add(step, log_time)
        self.frames_written += 1
        if self._max_bytes is not None and self._file.tell() >= self._max_bytes:
            self._finish_part()
            self._open_part()

    def _add(self, rank: int, msg_type: int, frame: bytes, log_time: int) -> None:
        channel = self._channels.get((rank, msg_type))
        if channel is None:
            channel = self._mcap.register_channel(
                topic(rank, msg_type),
                MESSAGE_ENCODING,
                schema_id=0,
                metadata={"rank": str(rank), "type": str(msg_type)},
            )
            self._channels[(rank, msg_type)] = channel
        self._mcap.add_message(channel, log_time=log_time, data=bytes(frame), publish_time=log_time)
        if self._chunk_started_ns is None:
            self._chunk_started_ns = time.monotonic_ns()
            self._chunk_started_at = self._file.tell()

    def _learn(self, frame: bytes, msg_type: int) -> None:
        """Fill the metadata's model and probe names from the first MODEL_META and HELLO."""
        if self._metadata_written or ("model" in self._given and "probe" in self._given):
            return
        decoded = decode_frame(frame)
        message: Any = decoded.message if decoded is not None else None
        if msg_type == MsgType.HELLO and message is not None:
            self._given.setdefault("probe", message.name)
        elif msg_type == MsgType.MODEL_META and message is not None:
            self._given.setdefault("model", message.model_name)
            self._write_metadata()

    def _write_metadata(self) -> None:
        if not self._metadata_written:
            self._metadata_written = True
            self._mcap.add_metadata(METADATA_NAME, dict(self._given))

    def _after_batch(self) -> None:
        started = self._chunk_started_ns
        if started is not None and self._file.tell() != self._chunk_started_at:
            # mcap wrote a full chunk meanwhile: the age runs from the chunk after it.
            self._chunk_started_ns = started = time.monotonic_ns()
            self._chunk_started_at = self._file.tell()
        if started is not None and time.monotonic_ns() - started >= self._flush_interval_ns:
            self._finalize_chunk()
        self._file.flush()

    def _finalize_chunk(self) -> None:
        # mcap's Writer closes a chunk only when it is full; a slow producer must not keep a
        # chunk (and what a crash would lose) open for minutes, so the age limit closes it here.
        self._mcap._Writer__finalize_chunk()  # type: ignore[attr-defined]
        self._chunk_started_ns = None
