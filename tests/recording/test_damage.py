"""Damaged recordings: cut short (a killed writer, a full disk), failed CRCs, not MCAP at all.

Each opens up to its last intact chunk and says what was lost, or fails with a RecordingError
naming the offset; never a crash or a hang.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from recording_helpers import run_frames

from synapse_native.protocol import decode_frame
from synapse_native.recording import RecordingError, RecordingWriter, open_recording
from synapse_native.recording._format import MAX_CHUNK_BYTES

HELPERS = Path(__file__).parent


def _record(path: Path, frames: list[bytes], compression: str = "zstd") -> None:
    with RecordingWriter(path, chunk_size=4096, compression=compression) as writer:
        writer.write_frames(frames)


def test_a_file_cut_anywhere_opens_up_to_its_last_whole_chunk(tmp_path: Path) -> None:
    frames = run_frames(120)
    whole = tmp_path / "whole.mcap"
    _record(whole, frames)
    data = whole.read_bytes()
    cut_file = tmp_path / "cut.mcap"
    previous = 0
    for cut in [*range(0, 200, 7), *range(200, len(data), 97), len(data) - 1]:
        cut_file.write_bytes(data[:cut])
        if cut < 8:
            with pytest.raises(RecordingError, match=r"cut.mcap: not an MCAP recording \(offset 0"):
                open_recording(cut_file)
            continue
        with open_recording(cut_file) as rec:
            assert rec.damage, cut
            got = [f for _, f in rec.frames()]
            assert got == frames[: len(got)], cut  # a prefix, every frame whole
            assert len(got) >= previous
            previous = len(got)
            assert len(rec.step_index()) == len({decode_frame(f).header.step for f in got[2:]})
            says = (
                f"file ends at byte {cut}",
                "not closed",
                f"cut short or damaged (file of {cut}",
            )
            assert any(s in rec.damage for s in says), rec.damage
    assert previous > len(frames) * 0.9


def test_the_damage_says_which_seconds_a_cut_chunk_held(tmp_path: Path) -> None:
    frames = run_frames(200)
    whole = tmp_path / "whole.mcap"
    _record(whole, frames)
    with open_recording(whole) as rec:
        last = max(rec._chunks, key=lambda c: c.offset)
    cut_file = tmp_path / "cut.mcap"
    cut_file.write_bytes(whole.read_bytes()[: last.offset + 100])
    with open_recording(cut_file) as rec:
        assert rec.damage is not None
        assert (
            f"file ends at byte {last.offset + 100} inside the chunk at offset {last.offset}"
            in rec.damage
        )
        assert " s of the recording (" in rec.damage and "are lost" in rec.damage


def test_a_chunk_that_fails_its_crc_is_skipped_and_named(tmp_path: Path) -> None:
    frames = run_frames(100)
    path = tmp_path / "crc.mcap"
    _record(path, frames, compression="none")
    with open_recording(path) as rec:
        chunks = sorted(rec._chunks, key=lambda c: c.offset)
    victim = chunks[len(chunks) // 2]
    data = bytearray(path.read_bytes())
    data[victim.offset + 200] ^= 0xFF
    path.write_bytes(bytes(data))
    with open_recording(path) as rec:
        assert rec.damage is None  # not known before the chunk is read
        got = [f for _, f in rec.frames()]
        assert f"the chunk at offset {victim.offset} fails its CRC" in (rec.damage or "")
        assert len(rec.problems) == 1
        assert 0 < len(got) < len(frames)
        assert set(got) <= set(frames)
        assert got[-1] == frames[-1]  # the chunks after the bad one still load


def test_a_compressed_chunk_that_does_not_decompress_is_skipped_and_named(tmp_path: Path) -> None:
    frames = run_frames(100)
    path = tmp_path / "zstd.mcap"
    _record(path, frames)
    with open_recording(path) as rec:
        victim = sorted(rec._chunks, key=lambda c: c.offset)[1]
    data = bytearray(path.read_bytes())
    data[victim.offset + 80 : victim.offset + 120] = bytes(40)
    path.write_bytes(bytes(data))
    with open_recording(path) as rec:
        problems = rec.check()
        assert len(problems) == 1 and f"chunk at offset {victim.offset}" in problems[0]
        assert frames[-1] in [f for _, f in rec.frames()]


@pytest.mark.parametrize("compression", ["zstd", "lz4", "none"])
@pytest.mark.parametrize("claim", ["one byte short", "over the bound"])
def test_a_chunk_that_lies_about_its_size_is_skipped_not_believed(
    tmp_path: Path, compression: str, claim: str
) -> None:
    """The reader decompresses no more than a chunk header claims, and believes no claim over
    the largest chunk a writer makes: a small damaged file cannot make it allocate gigabytes."""
    frames = run_frames(100)
    path = tmp_path / "claim.mcap"
    _record(path, frames, compression=compression)
    with open_recording(path) as rec:
        victim = sorted(rec._chunks, key=lambda c: c.offset)[1]
    data = bytearray(path.read_bytes())
    at = victim.offset + 1 + 8 + 16  # opcode, record length, message start and end times
    raw_size = int.from_bytes(data[at : at + 8], "little")
    lie = raw_size - 1 if claim == "one byte short" else MAX_CHUNK_BYTES + 1
    data[at : at + 8] = lie.to_bytes(8, "little")
    path.write_bytes(bytes(data))
    with open_recording(path) as rec:
        problems = rec.check()
        assert len(problems) == 1 and f"chunk at offset {victim.offset}" in problems[0]
        assert str(lie) in problems[0]
        assert frames[-1] in [f for _, f in rec.frames()]


@pytest.mark.parametrize(
    "content", [b"", b"hello, this is not a recording\n" * 10, b"\x89MCAP0\r\n" + b"\xff" * 64]
)
def test_a_file_that_is_not_a_recording_gets_a_clear_error(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "bad.mcap"
    path.write_bytes(content)
    if content.startswith(b"\x89MCAP0"):
        with open_recording(path) as rec:  # MCAP magic, garbage after: a scan that finds nothing
            assert "file ends at byte 72" in (rec.damage or "")
            assert list(rec.frames()) == []
    else:
        with pytest.raises(RecordingError, match=r"bad.mcap: not an MCAP recording \(offset 0"):
            open_recording(path)


_KILLED_WRITER = """
import sys, time
sys.path.insert(0, {helpers!r})
from recording_helpers import run_frames
from synapse_native.recording import RecordingWriter
frames = run_frames(100000)
writer = RecordingWriter({path!r}, flush_interval_s=0.2)
for i, frame in enumerate(frames):
    writer.write_frame(frame)
    if i == 3000:
        print("running", flush=True)
    time.sleep(0.0002)
"""


def test_a_writer_killed_mid_run_leaves_a_file_that_opens(tmp_path: Path) -> None:
    path = tmp_path / "killed.mcap"
    script = _KILLED_WRITER.format(helpers=str(HELPERS), path=str(path))
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None and child.stdout.readline() == "running\n"
        time.sleep(0.5)
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
    frames = run_frames(100000)
    with open_recording(path) as rec:
        assert rec.damage is not None
        got = [f for _, f in rec.frames()]
    assert len(got) > 3000
    assert got == frames[: len(got)]
