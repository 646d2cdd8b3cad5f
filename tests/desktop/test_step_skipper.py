"""Skipping whole old steps: the newest complete step, every step's summary (the history) and
everything outside steps is kept."""

from __future__ import annotations

import numpy as np

from synapse_desktop.models.session import Session
from synapse_desktop.net.batch import decode_batch
from synapse_desktop.net.step_skipper import skip_old_steps
from synapse_native.protocol import (
    ControlAck,
    ControlState,
    HeaderFlag,
    LayerSummaryBatch,
    SparseActivations,
    TrainingMetrics,
    encode,
    summary_records,
)

END = int(HeaderFlag.END_OF_STEP)


def _step(step: int, rank: int, seq: int, *, complete: bool = True) -> list[bytes]:
    records = summary_records(2)
    records["site_id"] = [0, 1]
    records["rms"] = float(step)
    sparse = [
        SparseActivations(site, 0.5, 1, np.array([3], np.uint32), np.array([1.5], np.float32))
        for site in (0, 1)
    ]
    messages = [LayerSummaryBatch(records), *sparse]
    flags = [0, 0, END if complete else 0]
    return [
        encode(m, seq=seq + i, step=step, rank=rank, flags=f)
        for i, (m, f) in enumerate(zip(messages, flags, strict=True))
    ]


def test_only_the_newest_complete_step_the_summaries_and_the_frames_outside_steps_are_kept() -> (
    None
):
    metrics = encode(TrainingMetrics({"loss": 2.5}), seq=4, step=1)
    ack = encode(ControlAck(1, True, ControlState(1.0, 10.0, 14, False, 512)), seq=8)
    frames = [*_step(1, 0, 1), metrics, *_step(2, 0, 5), ack, *_step(3, 0, 9)]
    frames += _step(4, 0, 12, complete=False)  # still arriving: kept for the next tick
    skip = skip_old_steps(frames)
    assert skip is not None and skip.steps == 2
    assert skip.keep == [0, 3, 4, 7, 8, 9, 10, 11, 12, 13]  # steps 1 and 2: summaries alone
    assert [s.seq for s in skip.skipped] == [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14]

    session = Session()
    session.apply_frames(decode_batch(frames, skip.keep, skip.skipped))
    assert session.counters.app_dropped == 4  # the sparse frames of steps 1 and 2
    assert session.counters.seq_gaps == 0  # skipped on purpose: no trainer drop
    assert session.counters.step == 4
    series = session.history.series(0)  # no hole in the history where steps were skipped
    assert series.steps.tolist() == [1, 2, 3, 4]
    assert series.field("rms").tolist() == [1.0, 2.0, 3.0, 4.0]


def test_a_batch_with_one_step_per_rank_is_left_alone() -> None:
    assert skip_old_steps(_step(1, 0, 1)) is None
    assert skip_old_steps(_step(1, 0, 1) + _step(1, 1, 1)) is None  # two ranks, one step each
    assert skip_old_steps(_step(1, 0, 1) + _step(2, 0, 4, complete=False)) is None


def test_ranks_are_skipped_each_on_their_own() -> None:
    frames = _step(1, 0, 1) + _step(5, 1, 1) + _step(2, 0, 4)
    skip = skip_old_steps(frames)
    assert skip is not None and skip.steps == 1
    assert skip.keep == [0, 3, 4, 5, 6, 7, 8]  # rank 0's old summary and rank 1's only step
