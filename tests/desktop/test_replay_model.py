"""Seeking in a run (no Qt): a session rebuilt at a step from frames shows what a session fed
the whole run up to that step shows; the frame log's bounds; the timeline and run index."""

from __future__ import annotations

import numpy as np
import pytest

from synapse_desktop.models.anomalies import Anomalies, AnomalyConfig
from synapse_desktop.models.compare import compare
from synapse_desktop.models.frame_log import FrameLog
from synapse_desktop.models.session import Session
from synapse_desktop.models.timeline import Mode, RunIndex, Timeline, restore_alerts
from synapse_desktop.models.topology import Topology
from synapse_desktop.net.batch import decode_batch
from synapse_desktop.net.recording_source import RecordingError, RecordingSource
from synapse_desktop.net.replay import Replay
from synapse_native.protocol import encode
from synapse_native.recording import RecordingWriter

from .frames import meta, summaries
from .sim_frames import nan_summaries, sim_steps

STEPS = 40


@pytest.fixture(scope="module")
def run() -> list[list[bytes]]:
    return list(sim_steps(STEPS, layers=4))


def _log(run: list[list[bytes]]) -> FrameLog:
    log = FrameLog()
    for frames in run:
        log.append(frames)
    return log


def _fed(run: list[list[bytes]], upto: int) -> Session:
    """A session fed the run step by step, as the live app is, up to step ``upto``."""
    session = Session()
    for frames in run[: upto + 1]:
        session.apply_frames(decode_batch(frames))
    return session


def _same_state(a: Session, b: Session, window: int) -> None:
    assert a.topology.model_name == b.topology.model_name
    assert len(a.topology) == len(b.topology) > 0
    np.testing.assert_array_equal(a.stats.steps, b.stats.steps)
    np.testing.assert_array_equal(a.stats.records, b.stats.records)
    for i in range(len(a.topology)):
        sa, sb = a.history.series(i), b.history.series(i)
        np.testing.assert_array_equal(sa.steps[-window:], sb.steps[-window:])
        np.testing.assert_array_equal(sa.values[-window:], sb.values[-window:])
        pa, pb = a.sparse.points[i], b.sparse.points[i]
        assert (pa.step, pa.n_above) == (pb.step, pb.n_above)
        np.testing.assert_array_equal(pa.indices, pb.indices)
    la, lb = a.metrics.series("loss"), b.metrics.series("loss")
    np.testing.assert_array_equal(la[0][-window:], lb[0][-window:])
    np.testing.assert_array_equal(la[1][-window:], lb[1][-window:])
    assert a.counters.step == b.counters.step
    assert a.counters.dropped_by_trainer == b.counters.dropped_by_trainer == 0
    assert a.counters.app_dropped == 0


@pytest.mark.parametrize("step", [0, 7, 23, STEPS - 1])
def test_a_seek_shows_what_the_live_session_showed_at_that_step(run, step) -> None:  # type: ignore[no-untyped-def]
    session = Session()
    replay = Replay(session, _log(run), window_steps=64, sparse_steps=2)
    assert replay.seek(step) == step
    _same_state(session, _fed(run, step), window=64)


def test_a_window_rebuilds_the_last_steps_of_history(run) -> None:  # type: ignore[no-untyped-def]
    session = Session()
    replay = Replay(session, _log(run), window_steps=8, sparse_steps=1)
    replay.seek(30)
    _same_state(session, _fed(run, 30), window=8)
    assert session.history.series(0).steps.tolist() == list(range(23, 31))


def test_seeking_back_and_playing_forward_agree_with_a_direct_seek(run) -> None:  # type: ignore[no-untyped-def]
    log = _log(run)
    session = Session()
    replay = Replay(session, log, window_steps=16, sparse_steps=2)
    replay.seek(35)
    replay.seek(10)  # back
    for step in (11, 12, 15):  # forward: frames applied to the state there
        assert replay.advance(step) == step
    direct = Session()
    Replay(direct, log, window_steps=16, sparse_steps=2).seek(15)
    _same_state(session, direct, window=6)
    assert replay.advance(39) == 39  # far ahead: a seek
    _same_state(session, _fed(run, 39), window=16)


def test_a_step_between_held_steps_shows_the_one_before(run) -> None:  # type: ignore[no-untyped-def]
    log = FrameLog()
    for frames in run[::5]:  # steps 0, 5, 10, ...
        log.append(frames)
    replay = Replay(Session(), log)
    assert replay.seek(12) == 10
    assert replay.seek(-3) == 0
    assert replay.seek(10**6) == 35
    assert Replay(Session(), FrameLog()).seek(3) == -1


def test_a_damaged_frame_is_left_out_and_the_others_shown() -> None:
    good = [encode(meta(2), seq=0)]
    good += [encode(summaries(list(range(6)), float(s)), seq=s + 1, step=s) for s in range(5)]
    bad = bytearray(good[3])
    bad[40:48] = b"\xff" * 8  # the records' first site id: garbage that fails a check
    bad[8:12] = (7).to_bytes(4, "little")  # and a payload length that does not match
    log = FrameLog()
    log.append([*good[:3], bytes(bad), *good[4:]])
    session = Session()
    replay = Replay(session, log)
    assert replay.seek(4) == 4
    assert replay.bad_frames == 1
    assert session.stats.steps.max() == 4


def test_the_frame_log_keeps_the_newest_frames_within_its_bound(run) -> None:  # type: ignore[no-untyped-def]
    step_bytes = sum(map(len, run[5]))
    log = FrameLog(max_bytes=10 * step_bytes)
    for frames in run:
        log.append(frames)
    assert log.nbytes <= 10 * step_bytes
    steps = list(log.steps())
    assert steps[-1] == STEPS - 1 and len(steps) <= 11
    assert log.meta(steps[0]) is not None  # the table in force outlives its frame
    session = Session()
    assert Replay(session, log).seek(0) == steps[0]  # the oldest held
    assert session.topology.model_name.startswith("Llama")


def test_the_run_index_has_the_loss_and_the_alerts_of_every_step() -> None:
    index = RunIndex()
    raw = [encode(meta(2), seq=0)]
    for step in range(30):
        batch = nan_summaries(6, bad=step == 25)  # NaN at step 25
        raw.append(encode(batch, seq=step + 1, step=step))
    index.feed(raw)
    assert [a.step for a in index.alerts] == [25]
    assert index.alert_steps() == [25]
    frames = list(sim_steps(6, layers=2))
    index2 = RunIndex()
    for part in frames:
        index2.feed(part)
    steps, loss = index2.loss()
    assert steps.tolist() == list(range(6))
    assert np.isfinite(loss).all()


def test_a_live_run_index_keeps_the_held_steps_and_what_the_alerts_dock_lists() -> None:
    """A live run's index is bounded by the frame log: the loss of the steps held, and their
    alerts plus as many before them as the Alerts dock lists, with the dropped ones counted."""
    capacity = AnomalyConfig().capacity
    index = RunIndex()
    index.feed([encode(meta(2), seq=0)])
    steps = 2 * capacity + 200
    for step in range(steps):  # NaN every other step: an alert every other step
        index.feed([encode(nan_summaries(6, bad=step % 2 == 1), seq=step + 1, step=step)])
    found = list(index.alerts)
    assert len(found) == steps // 2
    held = steps - 100  # the log holds the last 100 steps
    index.forget_before(held)
    assert index.alerts == found[-(50 + capacity) :]
    assert index.forgotten == len(found) - len(index.alerts)
    anomalies = Anomalies(Topology())
    restore_alerts(anomalies, index.alerts_until(steps), index.forgotten)
    assert list(anomalies.alerts) == found[-capacity:]
    assert anomalies.total == len(found)  # the dock still says how many went before
    loss_index = RunIndex()
    for part in sim_steps(20, layers=2):
        loss_index.feed(part)
    loss_index.forget_before(12)
    assert loss_index.loss()[0].tolist() == list(range(12, 20))


def test_the_timeline_steps_and_alerts() -> None:
    timeline = Timeline()
    seen = []
    timeline.changed.connect(lambda: seen.append(timeline.position))
    timeline.start(Mode.REPLAY, "run.mcap", [0, 2, 4, 8])
    assert (timeline.first, timeline.last) == (0, 8)
    assert timeline.neighbour(4, 1) == 8 and timeline.neighbour(4, -1) == 2
    assert timeline.neighbour(8, 1) == 8 and timeline.neighbour(0, -1) == 0
    assert timeline.neighbour(5, -1) == 4
    timeline.show(4)
    assert seen[-1] == 4
    with pytest.raises(ValueError):
        timeline.set(speed=3)
    timeline.set(speed=64, playing=True)
    assert timeline.speed == 64 and timeline.playing
    assert timeline.alert_step(4, 1) is None


def _record(path, run) -> None:  # type: ignore[no-untyped-def]
    with RecordingWriter(path) as writer:
        for frames in run:
            writer.write_frames(frames)


def test_a_recording_seeks_as_the_frames_in_memory_do(tmp_path, run) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "run.mcap"
    _record(path, run)
    source = RecordingSource(path)
    try:
        assert list(source.steps()) == list(range(STEPS))
        assert source.damage is None
        assert source.rate() == pytest.approx(10.0, rel=0.01)  # 100 ms apart
        for step in (0, 17, STEPS - 1):
            session = Session()
            assert Replay(session, source, window_steps=64).seek(step) == step
            _same_state(session, _fed(run, step), window=64)
        index = RunIndex()
        fractions = []
        for fraction, batch in source.scan(RunIndex.TYPES):
            index.feed(batch)
            fractions.append(fraction)
        assert fractions[-1] == 1.0
        assert index.loss()[0].tolist() == list(range(STEPS))
    finally:
        source.close()


def test_a_recording_cut_short_opens_and_seeks_to_its_last_whole_step(tmp_path, run) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "run.mcap"
    writer = RecordingWriter(path, chunk_size=64 * 1024)
    for frames in run:
        writer.write_frames(frames)
    writer.flush()
    data = path.read_bytes()
    cut = tmp_path / "cut.mcap"
    cut.write_bytes(data[: len(data) * 2 // 3])  # killed mid-write: no summary, a torn chunk
    writer.close()
    source = RecordingSource(cut)
    try:
        assert source.damage is not None
        steps = list(source.steps())
        assert 0 < len(steps) < STEPS
        session = Session()
        last = Replay(session, source).seek(10**6)
        assert last == steps[-1]
        assert session.topology.model_name.startswith("Llama")
        assert session.stats.steps.max() >= last - 1
    finally:
        source.close()


def test_a_file_that_is_no_recording_is_refused_with_a_reason(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "notes.mcap"
    path.write_bytes(b"hello, not an MCAP file")
    with pytest.raises(RecordingError, match=r"notes\.mcap"):
        RecordingSource(path)


def test_runs_of_different_models_compare_on_the_layers_they_share(run) -> None:  # type: ignore[no-untyped-def]
    this = Session()
    Replay(this, _log(run)).seek(20)  # 4 layers
    other = Session()
    Replay(other, _log(list(sim_steps(30, layers=2, seed=1)))).seek(20)  # 2 layers
    compared = compare(this, other, "rms")
    assert compared.shared.layers.tolist() == [0, 0, 0, 1, 1, 1]
    assert [this.topology.sites[i].layer for i in compared.shared.this] == [0, 0, 0, 1, 1, 1]
    assert [other.topology.sites[i].kind for i in compared.shared.reference] == [
        this.topology.sites[i].kind for i in compared.shared.this
    ]
    np.testing.assert_allclose(compared.this, this.stats.field("rms")[compared.shared.this])
    np.testing.assert_allclose(
        compared.reference, other.stats.field("rms")[compared.shared.reference]
    )
    np.testing.assert_allclose(compared.ratio, compared.this / compared.reference)
    assert len(compare(this, Session(), "rms").shared) == 0  # nothing in common yet


def test_synapse_app_refuses_a_missing_recording(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    from synapse_desktop.cli import build_parser
    from synapse_desktop.commands import app

    args = build_parser().parse_args(["app", str(tmp_path / "none.mcap")])
    assert app.run(args) == 2
    assert "no such recording" in capsys.readouterr().err
