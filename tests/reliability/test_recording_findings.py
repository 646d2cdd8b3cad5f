"""What the recording reader's fuzzing found: each a small file that once escaped the reader as
something other than a RecordingError; each now opens and reads what it holds."""

from __future__ import annotations

import struct
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1] / "recording"))

from recording_helpers import run_frames

from synapse_native.recording import RecordingWriter, open_recording

MAGIC = b"\x89MCAP0\r\n"
ATTACHMENT, CHUNK = 0x09, 0x06


def _record(path: Path, frames: list[bytes]) -> bytes:
    with RecordingWriter(path, chunk_size=4096) as writer:
        writer.write_frames(frames)
    return path.read_bytes()


def _unclosed(data: bytes) -> bytes:
    """``data`` up to its DATA_END record (a file whose writer never finished it)."""
    return data[: data.rindex(b"\x0f" + struct.pack("<Q", 4))]


def _string(text: bytes) -> bytes:
    return struct.pack("<I", len(text)) + text


def test_an_attachment_claiming_two_to_the_64_bytes_is_ignored(tmp_path: Path) -> None:
    frames = run_frames(40)
    path = tmp_path / "attachment.mcap"
    data = _unclosed(_record(path, frames))
    body = struct.pack("<QQ", 0, 0) + _string(b"x") + _string(b"y") + struct.pack("<Q", 2**64 - 1)
    path.write_bytes(data + struct.pack("<BQ", ATTACHMENT, len(body)) + body)
    with open_recording(path) as rec:
        assert rec.damage is not None and "not closed" in rec.damage
        assert [f for _, f in rec.frames()] == frames
        assert rec.check() == [rec.damage]


def test_a_chunk_record_shorter_than_a_chunk_header_holds_nothing(tmp_path: Path) -> None:
    frames = run_frames(40)
    path = tmp_path / "short.mcap"
    data = _unclosed(_record(path, frames))
    path.write_bytes(data + struct.pack("<BQ", CHUNK, 0))
    with open_recording(path) as rec:
        assert [f for _, f in rec.frames()] == frames
    path.write_bytes(MAGIC + struct.pack("<BQ", CHUNK, 3) + b"abc")
    with open_recording(path) as rec:
        assert list(rec.frames()) == [] and rec.damage is not None


def test_a_summary_without_a_crc_is_not_trusted_the_file_is_scanned(tmp_path: Path) -> None:
    """A summary's records are read at the lengths they claim: only one under its CRC is."""
    frames = run_frames(40)
    path = tmp_path / "nocrc.mcap"
    data = bytearray(_record(path, frames))
    data[-len(MAGIC) - 4 : -len(MAGIC)] = bytes(4)  # the footer's summary CRC
    path.write_bytes(bytes(data))
    with open_recording(path) as rec:
        assert rec.damage is not None and "none is lost" in rec.damage
        assert [f for _, f in rec.frames()] == frames
        assert len(rec.step_index()) == 40


def test_a_message_that_is_not_a_whole_wire_frame_marks_its_chunk_damaged(tmp_path: Path) -> None:
    """Every frame read back is whole: a chunk (CRC and all) holding a cut frame is skipped."""
    from mcap.writer import Writer

    frames = run_frames(10)
    path = tmp_path / "cut_frame.mcap"
    with open(path, "wb") as f:
        writer = Writer(f, chunk_size=1 << 20)
        writer.start(profile="synapse", library="test")
        channel = writer.register_channel("rank0/type1", "synapse-wire", schema_id=0)
        for i, frame in enumerate(frames):
            writer.add_message(channel, log_time=i, data=frame, publish_time=i)
        writer.add_message(channel, log_time=99, data=frames[-1][:-1], publish_time=99)
        writer.finish()
    with open_recording(path) as rec:
        assert list(rec.frames()) == []
        (problem,) = rec.problems
        assert "is not a whole wire frame" in problem and "skipped" in problem
