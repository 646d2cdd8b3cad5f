"""Fuzz target: the recording reader (``synapse_native.recording``), on a file from disk.

The input is the whole file. Opening it, reading every frame, checking every chunk and building
the step index may raise only RecordingError (a file that cannot be read as a recording); a
damaged file that opens reads as far as it can. Every frame read back is a whole wire frame.
Memory: what the file's size allows plus one chunk (a chunk's decompressed bytes and the frames
cut from them), whatever its header claims: a chunk may legitimately compress a thousandfold.
"""

from __future__ import annotations

import os
import tempfile

import atheris
from _harness import FIXED_BYTES, main

with atheris.instrument_imports():
    from synapse_native.protocol import HEADER_SIZE
    from synapse_native.recording import RecordingError, open_recording
    from synapse_native.recording._format import MAX_CHUNK_BYTES

SCRATCH = os.path.join(
    "/dev/shm" if os.path.isdir("/dev/shm") else tempfile.gettempdir(),
    f"synapse-fuzz-{os.getpid()}.mcap",
)


def test(data: bytes) -> None:
    with open(SCRATCH, "wb") as f:
        f.write(data)
    try:
        with open_recording(SCRATCH) as recording:
            for _, frame in recording.frames():
                assert len(frame) >= HEADER_SIZE, len(frame)
                assert len(frame) == HEADER_SIZE + int.from_bytes(frame[8:12], "little")
            recording.check()
            recording.step_index()
    except RecordingError:
        return


if __name__ == "__main__":
    try:
        main(test, per_byte=256, fixed=2 * MAX_CHUNK_BYTES + FIXED_BYTES)
    finally:
        if os.path.exists(SCRATCH):
            os.unlink(SCRATCH)
