"""Write each target's seed corpus, made from the golden vectors, under a folder.

python fuzz/seeds.py build/fuzz/seeds      # one sub-folder per target
"""

from __future__ import annotations

import hashlib
import struct
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import golden_frames

SPARSE = 4


def split_frames(frames: list[bytes]) -> bytes:
    """Frames as the batch and stream targets read them: u16 length-prefixed pieces."""
    return b"".join(struct.pack("<H", min(len(f), 0xFFFF)) + f[:0xFFFF] for f in frames)


def seeds() -> dict[str, list[bytes]]:
    frames = golden_frames()
    sparse = [f for f in frames if len(f) >= 8 and f[6] | f[7] << 8 == SPARSE]
    small = [f for f in frames if len(f) <= 4096]
    return {
        "codec": frames,
        "stream": [split_frames(frames[i : i + 3]) for i in range(0, len(frames), 3)],
        "batch": [split_frames(sparse)] + [split_frames([f, *sparse]) for f in frames[:20]],
        "handshake": small,
        "frame_check": [b"\x00\x00\x01\x00" + f[:32] for f in frames],
        "sparse_scan": [split_frames(sparse)] + [split_frames([s]) for s in sparse],
        "recording": recordings(frames),
    }


def recordings(frames: list[bytes]) -> list[bytes]:
    """Small recordings of the good golden frames: each compression, whole and cut short."""
    import tempfile

    from synapse_native.protocol import ProtocolError, decode_frame
    from synapse_native.recording import RecordingWriter

    good = []
    for frame in frames:
        try:
            decode_frame(frame)
        except ProtocolError:
            continue
        good.append(frame)
    out = []
    with tempfile.TemporaryDirectory() as scratch:
        for compression in ("none", "zstd", "lz4"):
            path = Path(scratch) / f"{compression}.mcap"
            with RecordingWriter(path, compression=compression, chunk_size=4096) as writer:
                for t, frame in enumerate(good):
                    writer.write_frame(frame, log_time_ns=1_000_000 * (t + 1))
            whole = path.read_bytes()
            out += [whole, whole[: len(whole) * 2 // 3]]
    return out


def write(folder: Path) -> None:
    for target, inputs in seeds().items():
        out = folder / target
        out.mkdir(parents=True, exist_ok=True)
        for data in inputs:
            (out / hashlib.sha1(data).hexdigest()).write_bytes(data)


if __name__ == "__main__":
    write(Path(sys.argv[1]))
