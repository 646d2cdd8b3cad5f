"""The backlog keeps the latest frames within its budget, led by the state in force."""

from __future__ import annotations

from synapse_native.protocol import (
    ControlAck,
    ControlState,
    HeaderFlag,
    Hello,
    ModelMeta,
    Role,
    TrainingMetrics,
    decode_frame,
    encode,
)
from synapse_serve.backlog import Backlog, flagged

STATE = ControlState(0.5, 10.0, 7, False, 8)


def _metrics(step: int) -> bytes:
    return encode(TrainingMetrics({"loss": float(step)}), seq=step + 1, step=step)


def _unstamped(frame: bytes) -> bytes:
    return frame[:16] + frame[24:]


def _time(frame: bytes) -> int:
    return int.from_bytes(frame[16:24], "little")


def test_the_oldest_frames_go_and_the_meta_in_force_leads_the_replay() -> None:
    meta_a = encode(ModelMeta("a", 0, ()))
    ack = encode(ControlAck(0, True, STATE))
    size = len(_metrics(0))
    backlog = Backlog(budget=10 * size)
    backlog.tap([encode(Hello(Role.TRAINER, "t")), meta_a, ack])  # a tap's start: seq 0
    assert backlog.snapshot() == ([], 0)  # nothing broadcast yet: nothing to replay
    backlog.tap([_metrics(s) for s in range(5)])
    frames = backlog.snapshot()[0]
    assert [_unstamped(f) for f in frames[:2]] == [_unstamped(meta_a), _unstamped(ack)]
    # The lead is stamped just before the oldest frame, so it leads in log time too.
    assert [_time(f) for f in frames[:3]] == [_time(frames[2]) - 1] * 2 + [_time(frames[2])]
    backlog.tap([encode(ModelMeta("b", 0, ()), seq=99)])
    meta_b = backlog.snapshot()[0][-1]
    backlog.tap([_metrics(s) for s in range(5, 30)])
    frames, mark = backlog.snapshot()
    assert backlog.nbytes <= 10 * size
    # meta_b was evicted: it is the meta in force at the oldest kept frame, and leads with the ack.
    assert [_unstamped(f) for f in frames[:2]] == [_unstamped(meta_b), _unstamped(ack)]
    assert [decode_frame(f).header.step for f in frames[2:]] == list(range(20, 30))
    assert backlog.since(mark) == []
    later = [_metrics(30), _metrics(31)]
    backlog.tap(later)
    assert backlog.since(mark) == later


def test_flagged_sets_the_backlog_bit_and_keeps_everything_else() -> None:
    frame = encode(TrainingMetrics({"loss": 1.0}), seq=9, step=4, flags=int(HeaderFlag.END_OF_STEP))
    header = decode_frame(flagged(frame)).header
    assert header.flags == HeaderFlag.END_OF_STEP | HeaderFlag.BACKLOG
    assert (header.seq, header.step) == (9, 4)
    assert flagged(frame)[32:] == frame[32:]
