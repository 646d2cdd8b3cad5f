"""RecordingWriter and open_recording: round trip, order, seeking, rotation, the golden vector."""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path

import pytest
from recording_helpers import STEP_NS, T0, run_frames

from synapse_native.protocol import MsgType, ProtocolError, decode_frame
from synapse_native.recording import RecordingWriter, open_recording, part_path
from synapse_native.recording._writer import StepIndex

VECTORS = Path(__file__).parents[1] / "vectors"


def _log_time(frame: bytes) -> int:
    return int.from_bytes(frame[16:24], "little")


def test_frames_come_back_byte_for_byte_with_metadata_and_step_index(tmp_path: Path) -> None:
    frames = run_frames(300)
    path = tmp_path / "run.mcap"
    with RecordingWriter(path, metadata={"source": "test"}, chunk_size=8192) as writer:
        writer.write_frames(frames)
    assert writer.frames_written == len(frames)
    assert writer.bytes_written == path.stat().st_size

    with open_recording(path) as rec:
        assert rec.damage is None
        assert rec.frame_count == len(frames)
        assert rec.metadata["model"] == "tiny-model"
        assert rec.metadata["probe"] == "synthetic-probe"
        assert rec.metadata["source"] == "test"
        assert {"host", "start_time", "protocol_version"} <= rec.metadata.keys()
        assert [f for _, f in rec.frames()] == frames
        index = rec.step_index()
        assert len(index) == 300
        assert index.time_of(41) == T0 + 42 * STEP_NS
        assert index.step_at(T0 + 42 * STEP_NS + 5) == 41
        assert index.step_at(T0) is None
        with pytest.raises(KeyError, match="before the first recorded step"):
            index.time_of(-1)


def test_the_step_index_keeps_each_step_s_first_time_in_12_bytes_a_step() -> None:
    index = StepIndex()  # a recorder's only state that grows with the steps recorded
    for step, log_time in [(5, 50), (6, 61), (6, 60), (3, 30), (5, 55), (7, 70)]:
        index.add(step, log_time)
    assert list(index.steps) == [3, 5, 6, 7]
    assert list(index.times) == [30, 50, 60, 70]
    assert index.steps.itemsize + index.times.itemsize == 12


def test_frames_of_several_ranks_come_back_in_log_time_order(tmp_path: Path) -> None:
    # Rank 1's clock runs 30 ms ahead and its frames arrive in bursts: file order is not time order.
    ranks = [run_frames(100, rank=0), [f for f in run_frames(100, rank=1)]]
    received: list[bytes] = []
    rng = random.Random(1)
    while any(ranks):
        source = rng.choice([r for r in ranks if r])
        received += [source.pop(0) for _ in range(min(len(source), rng.randint(1, 20)))]
    shifted = [
        f[:16] + (_log_time(f) + 30_000_000).to_bytes(8, "little") + f[24:] if f[28] == 1 else f
        for f in received
    ]
    path = tmp_path / "ranks.mcap"
    with RecordingWriter(path, chunk_size=4096) as writer:
        writer.write_frames(shifted)
    with open_recording(path) as rec:
        got = list(rec.frames())
    assert sorted(f for _, f in got) == sorted(shifted)
    times = [t for t, _ in got]
    assert times == sorted(times)
    assert all(t == _log_time(f) for t, f in got)


def test_frames_between_two_times_and_of_chosen_types(tmp_path: Path) -> None:
    frames = run_frames(200)
    path = tmp_path / "run.mcap"
    with RecordingWriter(path, chunk_size=4096) as writer:
        writer.write_frames(frames)
    with open_recording(path) as rec:
        index = rec.step_index()
        start, end = index.time_of(50), index.time_of(60)
        window = [f for _, f in rec.frames(start_ns=start, end_ns=end)]
        assert window == [f for f in frames if start <= _log_time(f) < end]
        assert {decode_frame(f).header.step for f in window} == set(range(50, 60))
        metas = list(rec.frames(end_ns=start, types=[MsgType.MODEL_META]))
        assert [decode_frame(f).header.msg_type for _, f in metas] == [MsgType.MODEL_META]


def test_rotation_starts_each_part_with_the_state_in_force(tmp_path: Path) -> None:
    frames = run_frames(600)
    path = tmp_path / "long.mcap"
    with RecordingWriter(path, chunk_size=8192, max_bytes=20_000) as writer:
        writer.write_frames(frames)
    parts = writer.paths
    assert len(parts) >= 3
    assert parts[1] == part_path(path, 2) == tmp_path / "long-0002.mcap"
    assert writer.bytes_written == sum(p.stat().st_size for p in parts)
    seen: list[bytes] = []
    for number, part in enumerate(parts, start=1):
        with open_recording(part) as rec:
            assert rec.damage is None
            got = [f for _, f in rec.frames()]
            types = [decode_frame(f).header.msg_type for f in got]
            assert types[:2] == [MsgType.HELLO, MsgType.MODEL_META]
            assert rec.metadata.get("part", "1") == str(number)
            seen += got if number == 1 else got[2:]
    assert seen == frames


def test_the_writer_refuses_bytes_that_are_not_one_whole_frame(tmp_path: Path) -> None:
    frame = run_frames(1)[-1]
    with RecordingWriter(tmp_path / "x.mcap") as writer:
        with pytest.raises(ProtocolError, match="bad magic"):
            writer.write_frame(b"XXXX" + frame[4:])
        with pytest.raises(ProtocolError, match="not one whole frame"):
            writer.write_frame(frame + b"\0")
        writer.write_frame(frame)
    with open_recording(tmp_path / "x.mcap") as rec:
        assert [f for _, f in rec.frames()] == [frame]


def test_a_slow_producer_s_frames_reach_the_file_within_the_flush_interval(tmp_path: Path) -> None:
    frames = run_frames(3)
    path = tmp_path / "slow.mcap"
    writer = RecordingWriter(path, flush_interval_s=0.0)
    writer.write_frames(frames[:3])
    # Not closed: a reader of the file as it is now finds the frames (a crash loses nothing).
    with open_recording(path) as rec:
        assert "not closed" in (rec.damage or "")
        assert [f for _, f in rec.frames()] == frames[:3]
    writer.close()


def test_the_golden_vector_decodes_to_the_expected_frames() -> None:
    expected = json.loads((VECTORS / "recording_v1.json").read_text())
    with open_recording(VECTORS / "recording_v1.mcap") as rec:
        assert rec.damage is None
        assert rec.metadata == expected["metadata"]
        got = list(rec.frames())
        assert [
            {"log_time_ns": t, "topic": _topic(f), "sha256": hashlib.sha256(f).hexdigest()}
            for t, f in got
        ] == expected["frames"]
        assert all(decode_frame(f) is not None for _, f in got)
        index = rec.step_index()
        assert [
            [int(s), int(t)] for s, t in zip(index.steps, index.times_ns, strict=True)
        ] == expected["step_index"]


def _topic(frame: bytes) -> str:
    from synapse_native.recording import topic

    return topic(frame[28] | frame[29] << 8, frame[6] | frame[7] << 8)
