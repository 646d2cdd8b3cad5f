"""How the session routes frames (a table by message type, after the sequence check) and how it
keeps its stores: flushed in order, cleared on a new run, remapped with the topology."""

from __future__ import annotations

import math

import numpy as np
import pytest

from synapse_desktop.models.anomalies import AlertKind, Severity
from synapse_desktop.models.session import Session
from synapse_desktop.models.store import SiteStore
from synapse_desktop.net.client import Client
from synapse_native.protocol import (
    ActionList,
    ActionResult,
    ActionStatus,
    AttentionPattern,
    BlockGradNorms,
    CaptureDone,
    CaptureStatus,
    Control,
    ErrorReport,
    HeadStats,
    JobState,
    JobStatus,
    Message,
    MoeRouting,
    OptimizerStats,
    ProbeCost,
    ProbeStats,
    RankSkew,
    ResidualTokens,
    TrainingMetrics,
    skew_records,
)

from .frames import ack, frame, meta, sparse, summaries, trainer_hello

U16, F32 = np.uint16, np.float32


def _layers() -> np.ndarray:
    return np.zeros(1, U16)


# Each message the session takes, and whether it carries fresh data (it counts toward the lag).
MESSAGES: list[tuple[str, Message, bool]] = [
    ("summaries", summaries([0, 1], 1.0), True),
    ("sparse", sparse(0, [1, 2]), True),
    ("grad norms", BlockGradNorms(np.ones(2, F32)), True),
    ("metrics", TrainingMetrics({"loss": 1.0}), True),
    (
        "attention",
        AttentionPattern(("a", "b"), _layers(), _layers(), np.zeros((1, 2, 2), np.float16)),
        True,
    ),
    ("head stats", HeadStats(_layers(), np.ones((1, 2), F32), np.ones((1, 2), F32), 2), True),
    (
        "optimizer",
        OptimizerStats(_layers(), np.ones(1, F32), np.ones(1, F32), np.ones(1, F32)),
        True,
    ),
    (
        "routing",
        MoeRouting(
            _layers(), np.ones((1, 2), np.uint32), np.ones((1, 2), F32), np.zeros(1, np.uint32), 1
        ),
        True,
    ),
    ("residual", ResidualTokens(_layers(), np.ones((1, 2), F32)), True),
    ("rank skew", RankSkew(2, skew_records(0)), True),
    ("hello", trainer_hello(), False),
    ("meta", meta(2), False),
    ("control ack", ack(1, 0.5), False),
    ("probe stats", ProbeStats(1, 0, 0, 1024, 0, 1, 1), False),
    ("probe cost", ProbeCost(0.0, 0.01, 1, 0, 1000, 10, 0), False),
    ("error", ErrorReport(1, "oops"), False),
    ("capture done", CaptureDone(1, CaptureStatus.WRITTEN), False),
    ("action list", ActionList(("save",)), False),
    ("action result", ActionResult(1, ActionStatus.DONE), False),
    ("job status", JobStatus(2, JobState.RUNNING, 0), False),
    ("not for a viewer", Control(1, threshold=1.0), False),  # no handler: ignored
]


@pytest.mark.parametrize(
    ("message", "fresh"), [m[1:] for m in MESSAGES], ids=[m[0] for m in MESSAGES]
)
def test_each_message_type_reaches_its_handler_and_says_whether_it_was_fresh(
    message: Message, fresh: bool
) -> None:
    session = Session()
    session.apply_frames([frame(message, seq=1, step=3, ts=1_000)], now_ns=2_000_000)
    assert (not math.isnan(session.counters.lag_ms)) is fresh
    assert session.counters.stale == 0


def test_the_handlers_change_the_models_they_name() -> None:
    session = Session()
    errors: list[str] = []
    session.peer_error.connect(errors.append)
    session.apply_frames(
        [
            frame(meta(2), seq=1),
            frame(summaries([0, 1], 2.0), seq=2, step=5),
            frame(BlockGradNorms(np.ones(2, F32)), seq=3, step=5),
            frame(ack(0, 0.75), seq=4),
            frame(ActionList(("save", "stop")), seq=5),
            frame(ErrorReport(1, "oops"), seq=6),
        ]
    )
    assert len(session.topology) == 6 and session.counters.step == 5
    assert session.stats.field("rms")[:2].tolist() == [2.0, 2.0]
    assert session.control.state is not None and session.control.state.threshold == 0.75
    assert session.actions.names == ("save", "stop")
    assert errors == ["oops"]


def test_a_repeated_sequence_number_is_stale_whatever_the_type_but_hello_is_never_checked() -> None:
    session = Session()
    session.apply_frames([frame(ack(0, 0.5), seq=1), frame(ack(0, 0.25), seq=1)])
    assert session.counters.stale == 1
    assert session.control.state is not None and session.control.state.threshold == 0.5
    session.apply_frames([frame(trainer_hello(), seq=1), frame(trainer_hello(), seq=1)])
    assert session.counters.stale == 1  # HELLO skips the check (and restarts the numbering)
    session.apply_frame(frame(ack(0, 0.25), seq=1))
    assert session.counters.stale == 1 and session.control.state.threshold == 0.25


def test_a_message_without_handler_still_takes_its_sequence_number() -> None:
    session = Session()
    session.apply_frames([frame(Control(1, threshold=1.0), seq=1), frame(ack(0, 0.5), seq=1)])
    assert session.counters.stale == 1 and session.control.state is None


def test_flush_emits_the_stores_then_the_counters_then_the_anomalies_then_flushed() -> None:
    session = Session()
    session.apply_frames([frame(meta(2), seq=1), frame(summaries([0], 1.0), seq=2, step=1)])
    order: list[str] = []
    session.stats.changed.connect(lambda _indices: order.append("stats"))
    session.counters.changed.connect(lambda: order.append("counters"))
    session.anomalies.changed.connect(lambda: order.append("anomalies"))
    session.flushed.connect(lambda: order.append("flushed"))
    session.stats.clear()
    session.counters.mark()
    session.anomalies.add_job_alert(AlertKind.RANK_SKEW, Severity.WARNING, 1, 0, "skew")
    session.flush()
    assert order == ["stats", "counters", "anomalies", "flushed"]


def test_a_new_run_clears_every_store_and_resets_the_anomalies() -> None:
    session = Session()
    session.apply_frames(
        [
            frame(meta(2), seq=1),
            frame(summaries([0, 1], 2.0), seq=2, step=5),
            frame(BlockGradNorms(np.ones(2, F32)), seq=3, step=5),
            frame(TrainingMetrics({"loss": 1.0}), seq=4, step=5),
        ]
    )
    session.anomalies.add_job_alert(AlertKind.RANK_SKEW, Severity.WARNING, 5, 0, "skew")
    reset: list[bool] = []
    session.data_reset.connect(lambda: reset.append(True))
    session.reset_data()
    assert reset == [True]
    assert (session.stats.steps == -1).all() and len(session.grad_norms) == 0
    assert not session.anomalies.alerts and session.anomalies.total == 0
    assert session.counters.step == 5  # the counters outlive a run


def test_the_per_site_stores_follow_a_topology_rebuild() -> None:
    session = Session()
    site_stores = (session.stats, session.history, session.sparse, session.ranks, session.skew)
    assert all(isinstance(store, SiteStore) for store in site_stores)
    others = (session.grad_norms, session.metrics, session.routing)
    assert not any(isinstance(store, SiteStore) for store in others)
    session.apply_frames([frame(meta(1), seq=1), frame(summaries([1], 3.0), seq=2, step=1)])
    assert session.stats.steps.tolist() == [-1, 1, -1]
    session.apply_frame(frame(meta(2), seq=3))  # more sites: the rows follow their site ids
    assert len(session.stats) == 6
    assert session.stats.steps[session.topology.index_of(1)] == 1
    assert session.stats.field("rms")[session.topology.index_of(1)] == 3.0


def test_a_control_change_the_client_cannot_send_is_reported(qtbot) -> None:  # type: ignore[no-untyped-def]
    session = Session()
    client = Client(session)  # never connected
    changed: list[bool] = []
    session.control.changed.connect(lambda: changed.append(True))
    session.control.request(threshold=1.0)
    assert not session.control.pending and changed == [True]
    assert session.control.error == "not connected: the change was not sent"
    client.close()
