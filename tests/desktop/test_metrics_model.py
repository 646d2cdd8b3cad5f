"""Training metrics in the app (no display needed): the per-rank history, the session, tail."""

from __future__ import annotations

import math

import numpy as np
import pytest

from synapse_desktop.commands.tail import describe
from synapse_desktop.models.metrics import MetricsHistory
from synapse_desktop.models.session import Session
from synapse_native.protocol import TrainingMetrics

from .frames import frame, meta, summaries, trainer_hello


def metrics(**values: float) -> TrainingMetrics:
    return TrainingMetrics(values)


class Count:
    def __init__(self) -> None:
        self.n = 0

    def on(self) -> None:
        self.n += 1


def test_series_are_kept_per_rank_and_name_in_step_order() -> None:
    history = MetricsHistory()
    history.apply(metrics(loss=2.0, lr=0.1), step=0, rank=0)
    history.apply(metrics(loss=1.5, grad_norm=3.0), step=1, rank=0)
    history.apply(metrics(loss=1.0), step=3, rank=0)
    history.apply(metrics(loss=1.25), step=2, rank=0)  # late: goes in its place
    assert history.names() == ["loss", "lr", "grad_norm"]
    assert history.ranks() == [0]
    steps, values = history.series("loss", rank=0)
    assert steps.dtype == np.int64 and values.dtype == np.float64
    assert steps.tolist() == [0, 1, 2, 3] and values.tolist() == [2.0, 1.5, 1.25, 1.0]
    assert history.series("loss")[1].tolist() == values.tolist()  # one rank: its own series
    assert history.latest("loss") == 1.0 and history.latest("lr", rank=0) == 0.1
    steps, values = history.series("missing")
    assert len(steps) == len(values) == 0 and history.latest("missing") is None
    assert history.latest("loss", rank=5) is None


def test_a_step_sent_again_replaces_its_value() -> None:
    history = MetricsHistory()
    for step in range(4):
        history.apply(metrics(loss=float(step)), step=step, rank=0)
    history.apply(metrics(loss=10.0), step=1, rank=0)
    history.apply(metrics(loss=30.0), step=3, rank=0)
    steps, values = history.series("loss")
    assert steps.tolist() == [0, 1, 2, 3] and values.tolist() == [0.0, 10.0, 2.0, 30.0]


def test_nan_and_infinite_values_are_kept() -> None:
    history = MetricsHistory()
    history.apply(metrics(loss=1.0), step=0, rank=0)
    history.apply(metrics(loss=math.inf), step=1, rank=0)
    history.apply(metrics(loss=math.nan), step=2, rank=0)
    _, values = history.series("loss")
    assert values[0] == 1.0 and values[1] == math.inf and math.isnan(values[2])
    latest = history.latest("loss")
    assert latest is not None and math.isnan(latest)


def test_rank_none_is_the_mean_over_ranks_at_steps_all_of_them_reported() -> None:
    history = MetricsHistory()
    for step in range(5):
        history.apply(metrics(loss=float(step)), step=step, rank=0)
        if step != 2:
            history.apply(metrics(loss=float(10 * step)), step=step, rank=1)
    history.apply(metrics(only_rank1=7.0), step=0, rank=1)
    assert history.ranks() == [0, 1]
    steps, values = history.series("loss")
    assert steps.tolist() == [0, 1, 3, 4]
    assert values.tolist() == [0.0, 5.5, 16.5, 22.0]
    assert history.latest("loss") == 22.0
    assert history.series("loss", rank=1)[0].tolist() == [0, 1, 3, 4]
    assert history.series("only_rank1")[1].tolist() == [7.0]  # a single rank sent it


def test_latest_mean_waits_for_every_rank() -> None:
    history = MetricsHistory()
    history.apply(metrics(loss=1.0), step=0, rank=0)
    history.apply(metrics(loss=3.0), step=0, rank=1)
    history.apply(metrics(loss=0.5), step=1, rank=0)  # rank 1 has not sent step 1 yet
    assert history.latest("loss") == 2.0
    assert history.latest("loss", rank=0) == 0.5
    history.apply(metrics(loss=1.5), step=1, rank=1)
    assert history.latest("loss") == 1.0
    empty = MetricsHistory()
    empty.apply(metrics(loss=1.0), step=0, rank=0)
    empty.apply(metrics(loss=1.0), step=1, rank=1)
    assert empty.latest("loss") is None and len(empty.series("loss")[0]) == 0


def test_capacity_keeps_the_newest_steps() -> None:
    history = MetricsHistory(capacity=100)
    for step in range(1000):
        history.apply(metrics(loss=float(step)), step=step, rank=0)
        if step == 500:
            steps, _ = history.series("loss")
            assert steps.tolist() == list(range(401, 501))
    steps, values = history.series("loss")
    assert steps.tolist() == list(range(900, 1000))
    assert values.tolist() == [float(s) for s in range(900, 1000)]
    history.apply(metrics(loss=-1.0), step=5, rank=0)  # older than everything held: dropped
    history.apply(metrics(loss=-2.0), step=950, rank=0)  # held: replaced
    steps, values = history.series("loss")
    assert steps.tolist() == list(range(900, 1000)) and values[50] == -2.0
    with pytest.raises(ValueError, match="capacity"):
        MetricsHistory(capacity=1)


def test_late_steps_inside_a_full_history_push_out_the_oldest() -> None:
    history = MetricsHistory(capacity=4)
    for step in (0, 2, 4, 6):
        history.apply(metrics(x=float(step)), step=step, rank=0)
    history.apply(metrics(x=3.0), step=3, rank=0)
    assert history.series("x")[0].tolist() == [2, 3, 4, 6]


def test_series_are_copies() -> None:
    history = MetricsHistory()
    history.apply(metrics(loss=1.0), step=0, rank=0)
    steps, values = history.series("loss")
    values[0] = 99.0
    history.apply(metrics(loss=2.0), step=1, rank=0)
    assert history.series("loss")[1].tolist() == [1.0, 2.0] and steps.tolist() == [0]


def test_session_feeds_metrics_and_notifies_once_per_batch() -> None:
    session = Session()
    changes = Count()
    session.metrics.changed.connect(changes.on)
    session.apply_frames(
        [
            frame(trainer_hello(), seq=0),
            frame(meta(1), seq=1),
            frame(metrics(loss=2.0, lr=0.1), seq=2, step=0),
            frame(metrics(loss=1.0, lr=0.1), seq=3, step=1),
            frame(metrics(loss=5.0), seq=4, step=0, rank=1),
            frame(metrics(loss=0.0), seq=3, step=9),  # stale seq: ignored
        ]
    )
    assert changes.n == 1
    assert session.metrics.names() == ["loss", "lr"] and session.metrics.ranks() == [0, 1]
    assert session.metrics.series("loss", rank=0)[1].tolist() == [2.0, 1.0]
    assert session.metrics.series("loss")[0].tolist() == [0]  # the only step both ranks sent
    session.apply_frames([frame(summaries([0], 1.0), seq=5, step=1)])
    assert changes.n == 1  # no metrics in that batch


def test_a_restarted_trainer_clears_the_metrics_with_the_rest() -> None:
    session = Session()
    session.apply_frames(
        [
            frame(trainer_hello(), seq=0),
            frame(metrics(loss=3.0), seq=1, step=499),
            frame(summaries([0], 3.0), seq=2, step=500),
        ]
    )
    session.apply_frames(
        [
            frame(trainer_hello(), seq=0),
            frame(metrics(loss=9.0), seq=1, step=0),
            frame(metrics(loss=8.0), seq=2, step=1),
        ]
    )
    steps, values = session.metrics.series("loss")
    assert steps.tolist() == [0, 1] and values.tolist() == [9.0, 8.0]
    changes = Count()
    session.metrics.changed.connect(changes.on)
    session.reset_data()
    session.flush()
    assert changes.n == 1 and session.metrics.names() == [] and session.metrics.ranks() == []


def test_tail_prints_one_line_per_metrics_frame() -> None:
    line = describe(frame(metrics(loss=2.8125, lr=3e-4, grad_norm=math.nan), seq=7, step=42), 1)
    assert line.startswith("TRAINING_METRICS")
    assert "step=42" in line and "seq=7" in line
    assert line.endswith("n=3 loss=2.8125 lr=0.0003 grad_norm=nan")
    many = describe(frame(TrainingMetrics({f"m{i}": i for i in range(10)}), seq=8), 1)
    assert many.endswith("m7=7 (+2 more)")
