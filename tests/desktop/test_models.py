"""The app state without Qt or VisPy: frames in, consistent state and signals out."""

from __future__ import annotations

import dataclasses
import gc
from typing import Any

import numpy as np
import pytest

from synapse_desktop.models.bands import bands
from synapse_desktop.models.connection import ConnectionStatus, Phase
from synapse_desktop.models.history import History
from synapse_desktop.models.ordering import SeqGuard, Verdict
from synapse_desktop.models.session import Session
from synapse_desktop.models.signal import Signal
from synapse_desktop.models.view_settings import ViewSettings
from synapse_native.protocol import BlockGradNorms, Frame

from .frames import ack, frame, meta, sparse, summaries, trainer_hello


class Listener:
    def __init__(self) -> None:
        self.calls: list[tuple[object, ...]] = []

    def on(self, *args: object) -> None:
        self.calls.append(args)


def test_signal_calls_blocks_and_forgets_dead_listeners() -> None:
    signal = Signal()
    seen: list[int] = []
    signal.connect(seen.append)
    listener = Listener()
    signal.connect(listener.on)
    signal.emit(1)
    with signal.blocked():
        signal.emit(2)
    assert seen == [1] and listener.calls == [(1,)]
    del listener
    gc.collect()
    signal.emit(3)
    assert seen == [1, 3] and len(signal) == 1
    signal.disconnect(seen.append)
    signal.emit(4)
    assert seen == [1, 3]


def test_meta_builds_topology_in_layer_and_kind_order() -> None:
    session = Session()
    session.apply_frame(frame(meta(4), seq=1))
    sites = session.topology.sites
    assert len(sites) == 12 and session.topology.layers == [0, 1, 2, 3]
    assert [s.kind_name for s in sites[:3]] == ["attn", "mlp", "residual"]
    assert (sites[1].grid_rows, sites[1].grid_cols) == (112, 128)
    assert session.topology.index_of(5) == 5 and session.topology.index_of(99) == -1
    rebuilt = Listener()
    session.topology.changed.connect(rebuilt.on)
    session.apply_frame(frame(meta(4), seq=2))  # same meta again: no rebuild
    assert rebuilt.calls == []


def test_summaries_before_meta_bootstrap_then_meta_keeps_the_data() -> None:
    session = Session()
    session.apply_frame(frame(summaries([0, 1, 2], 2.0), seq=1, step=10))
    assert [s.name for s in session.topology.sites] == ["site 0", "site 1", "site 2"]
    session.selection.select(2)
    session.apply_frame(frame(meta(2), seq=2))
    assert len(session.topology) == 6
    assert session.stats.steps[session.topology.index_of(1)] == 10
    assert session.stats.field("rms")[session.topology.index_of(4)] != session.stats.field("rms")[0]
    assert session.selection.selected == session.topology.index_of(2)
    # A site id the meta did not announce adds a layer.
    session.apply_frame(frame(summaries([40], 1.0), seq=3, step=11))
    assert 40 in session.topology.layers


def test_latest_stats_history_and_one_signal_per_batch() -> None:
    session = Session(history_capacity=4)
    session.apply_frame(frame(meta(2), seq=1))
    changed = Listener()
    session.stats.changed.connect(changed.on)
    batch = [
        frame(summaries(list(range(6)), float(step)), seq=2 + step, step=step) for step in range(6)
    ]
    session.apply_frames(batch)
    assert len(changed.calls) == 1
    np.testing.assert_array_equal(changed.calls[0][0], np.arange(6))
    assert session.stats.field("rms")[3] == 5.0 and session.counters.step == 5
    series = session.history.series(3)
    np.testing.assert_array_equal(series.steps, [2, 3, 4, 5])  # bounded ring, oldest first
    np.testing.assert_array_equal(series.field("mean"), [2, 3, 4, 5])


def test_duplicates_and_older_steps_never_replace_newer_data() -> None:
    session = Session()
    session.apply_frame(frame(meta(1), seq=1))
    session.apply_frame(frame(summaries([0], 5.0), seq=3, step=20))
    session.apply_frame(frame(summaries([0], 1.0), seq=3, step=21))  # duplicate seq
    session.apply_frame(frame(summaries([0], 1.0), seq=2, step=19))  # late frame
    session.apply_frame(frame(summaries([0], 1.0), seq=4, step=18))  # new seq, older step
    assert session.stats.field("rms")[0] == 5.0 and session.stats.steps[0] == 20
    assert session.counters.stale == 2
    session.apply_frame(frame(sparse(1, [1, 2]), seq=5, step=21))
    session.apply_frame(frame(sparse(1, [7]), seq=6, step=20))
    np.testing.assert_array_equal(session.sparse.points[1].indices, [1, 2])
    assert session.history.series(0).steps.tolist() == [20]


def test_messages_the_session_does_not_use_are_ignored_but_keep_the_sequence() -> None:
    session = Session()
    changes = Listener()
    session.stats.changed.connect(changes.on)
    session.apply_frames([frame(trainer_hello(), seq=0), frame(meta(2), seq=0)])
    norms = frame(BlockGradNorms(np.array([0.5, np.nan], np.float32)), seq=1, step=3)
    later: Any = object()  # a message class of a later build
    unknown = Frame(dataclasses.replace(norms.header, seq=2), later)
    session.apply_frames([norms, unknown, frame(summaries([0, 1], 2.0), seq=3, step=3)])
    rows = session.topology.indices_of(np.array([0, 1]))
    assert changes.calls[-1][0].tolist() == rows.tolist()
    calls = len(changes.calls)
    session.apply_frames([frame(BlockGradNorms(np.zeros(2, np.float32)), seq=4, step=4)])
    assert len(changes.calls) == calls  # nothing the views show has changed
    assert session.counters.seq_gaps == 0 and session.counters.stale == 0
    assert session.stats.steps[rows].tolist() == [3, 3] and session.counters.step == 3
    assert len(session.topology) == 6


def test_seq_gaps_count_as_trainer_drops_and_wrap_around() -> None:
    guard = SeqGuard()
    assert guard.check(0, 2**32 - 2) is Verdict.NEW
    assert guard.check(0, 1) is Verdict.NEW  # wrapped, skipping 2**32 - 1 and 0
    assert guard.gaps == 2
    assert guard.check(0, 2**32 - 1) is Verdict.LATE
    assert guard.check(1, 7) is Verdict.NEW  # another rank is another stream
    # seq 0 marks frames for one client only (handshake, meta, first ack): outside the count.
    assert guard.check(1, 0) is Verdict.NEW and guard.check(1, 0) is Verdict.NEW
    assert guard.check(1, 8) is Verdict.NEW and guard.gaps == 2


def test_percentile_bands_from_the_log_bins() -> None:
    hists = np.zeros((2, 64), np.float32)
    hists[0, 48] = 1.0  # all values in [1, 2)
    hists[1, 31 - 1] = 0.5  # half in (-2^-14, -2^-15]
    hists[1, 63] = 0.5  # half above 2^15
    out = bands(hists)
    assert out.shape == (2, 5)
    assert np.all((out[0] >= 1) & (out[0] <= 2)) and np.all(np.diff(out[0]) > 0)
    assert out[1, 0] < 0 < out[1, 4]
    assert np.isnan(bands(np.zeros((1, 64), np.float32))).all()
    faulty = np.full((1, 64), -1.0, np.float32)
    faulty[0, 40] = np.nan
    assert np.isnan(bands(faulty)).all()  # bad weights count as none, no exception


def test_bands_agree_with_the_native_reader() -> None:
    histogram = pytest.importorskip("synapse_native.histogram")
    rng = np.random.default_rng(3)
    hists = rng.exponential(1.0, (20, 64)) * (rng.random((20, 64)) < 0.3)
    hists[0] = 0.0
    hists[0, 33] = 5.0  # one bin touching zero: linear inside it
    ours = bands(hists.astype(np.float32))
    for row, expected in zip(hists, ours, strict=True):
        reference = histogram.percentiles(row, (0.05, 0.25, 0.5, 0.75, 0.95))
        np.testing.assert_allclose(expected, reference, rtol=1e-4, atol=1e-9)


def test_a_restarted_trainer_starts_a_new_run() -> None:
    session = Session()
    session.apply_frames(
        [
            frame(trainer_hello(), seq=0),
            frame(meta(1), seq=1),
            frame(summaries([0, 1], 3.0), seq=2, step=500),
        ]
    )
    session.apply_frames(
        [
            frame(trainer_hello(), seq=0),
            frame(meta(1), seq=1),
            frame(summaries([0], 1.0), seq=2, step=3),
        ]
    )
    assert session.stats.steps[0] == 3 and session.stats.steps[1] == -1
    assert session.history.series(0).steps.tolist() == [3]


def test_control_requests_and_acknowledgements() -> None:
    session = Session()
    sent = Listener()
    session.control.requested.connect(sent.on)
    control = session.control.request(threshold=0.7)
    assert sent.calls == [(control,)] and control.threshold == 0.7
    session.apply_frame(frame(ack(control.request_id, 0.7), seq=1))
    assert session.control.state is not None and session.control.state.threshold == pytest.approx(
        0.7
    )
    assert not session.control.pending
    rejected = session.control.request(threshold=-1.0)
    session.apply_frame(frame(ack(rejected.request_id, 0.7, False, "threshold < 0"), seq=2))
    assert (
        session.control.error == "threshold < 0"
        and session.control.state.threshold == pytest.approx(0.7)
    )


def test_counters_lag_and_rates() -> None:
    session = Session()
    session.apply_frames(
        [frame(summaries([0], 1.0), seq=1, ts=1_000_000_000)], now_ns=1_025_000_000
    )
    assert session.counters.lag_ms == pytest.approx(25.0)
    session.counters.received(10.0, 5, 5000)
    session.counters.received(10.5, 5, 5000)
    assert session.counters.rates(10.6) == (10.0, 10000.0)
    assert session.counters.rates(12.0) == (0.0, 0.0)


def test_history_rejects_tiny_capacity_and_view_settings_validate() -> None:
    with pytest.raises(ValueError):
        History(1)
    view = ViewSettings()
    changes = Listener()
    view.changed.connect(changes.on)
    view.set(colormap="viridis", glow=True)
    assert changes.calls == [("colormap", "viridis")]
    with pytest.raises(ValueError):
        view.set(colormap="rainbow")
    assert view.values.colormap == "viridis"


def test_connection_status_reads_well() -> None:
    status = ConnectionStatus(Phase.RETRYING, "localhost:9000", "connection refused", 12.2)
    assert status.describe(10.0) == "retrying localhost:9000 in 3 s: connection refused"
    assert ConnectionStatus(Phase.LIVE, "h:1", peer="sim").describe(0) == "live h:1 (sim)"
