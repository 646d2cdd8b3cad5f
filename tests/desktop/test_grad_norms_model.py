"""Per-block gradient norms in the app (no display needed): the bounded history and the session."""

from __future__ import annotations

import math

import numpy as np
import pytest

from synapse_desktop.models.grad_norms import GradNorms
from synapse_desktop.models.session import Session
from synapse_native.protocol import BlockGradNorms

from .frames import frame, meta, trainer_hello


class Count:
    def __init__(self) -> None:
        self.n = 0

    def on(self) -> None:
        self.n += 1


def test_steps_come_back_oldest_first_and_the_ring_keeps_the_last_capacity() -> None:
    grads = GradNorms(capacity=4)
    assert len(grads) == 0 and grads.newest == -1 and grads.window()[0].size == 0
    for step in range(6):
        assert grads.append(10 * step, [step, 2 * step, 3 * step])
    steps, norms = grads.window()
    assert steps.tolist() == [20, 30, 40, 50]
    assert norms.shape == (4, 3) and norms.dtype == np.float32
    assert norms[:, 1].tolist() == [4, 6, 8, 10]
    assert grads.newest == 50 and grads.n_blocks == 3


def test_frames_of_a_held_step_merge_and_stale_steps_are_dropped() -> None:
    grads = GradNorms(capacity=8)
    nan = math.nan
    grads.append(5, [1.0, nan, nan, nan])  # pipeline stage 0 measured block 0
    grads.append(6, [0.5, 0.5, 0.5, 0.5])
    assert grads.append(5, [nan, nan, 2.0, 3.0])  # stage 1, late: fills its blocks of step 5
    assert grads.append(5, [0.2, nan, nan, nan])  # a smaller norm does not replace a larger
    assert not grads.append(4, [9.0, 9.0, 9.0, 9.0])  # older than everything held
    steps, norms = grads.window()
    assert steps.tolist() == [5, 6]
    np.testing.assert_array_equal(norms[0], [1.0, nan, 2.0, 3.0])


def test_a_longer_frame_adds_blocks_and_older_steps_lack_them() -> None:
    grads = GradNorms(capacity=4)
    grads.append(0, [1.0, 1.0])
    grads.append(1, [2.0, 2.0, 2.0])
    grads.append(2, [3.0])  # a shorter frame: the missing blocks are not measured
    _, norms = grads.window()
    np.testing.assert_array_equal(norms, [[1, 1, np.nan], [2, 2, 2], [3, np.nan, np.nan]])


def test_changed_fires_once_per_flush_and_only_after_a_change() -> None:
    grads = GradNorms()
    count = Count()
    grads.changed.connect(count.on)
    grads.flush()
    assert count.n == 0
    grads.append(1, [1.0])
    grads.append(2, [1.0])
    grads.flush()
    grads.flush()
    assert count.n == 1
    grads.clear()
    grads.flush()
    assert count.n == 2 and len(grads) == 0 and grads.n_blocks == 1
    with pytest.raises(ValueError):
        GradNorms(capacity=1)


def test_the_session_keeps_block_grad_norms_frames_per_step() -> None:
    session = Session(history_capacity=16)
    count = Count()
    session.grad_norms.changed.connect(count.on)
    session.apply_frame(frame(meta(4), seq=1))
    norms = [np.array([0.5, 0.25, 1.0, 8.0], np.float32) * (s + 1) for s in range(3)]
    session.apply_frames(
        [frame(BlockGradNorms(n), seq=2 + s, step=100 + s) for s, n in enumerate(norms)]
    )
    assert count.n == 1  # once for the batch
    steps, held = session.grad_norms.window()
    assert steps.tolist() == [100, 101, 102]
    np.testing.assert_array_equal(held, norms)
    # The trainer restarts (a new HELLO, then an older step): the old run's norms go.
    session.apply_frames(
        [
            frame(trainer_hello(), seq=0),
            frame(BlockGradNorms(np.ones(4, np.float32)), seq=1, step=3),
        ]
    )
    steps, held = session.grad_norms.window()
    assert steps.tolist() == [3] and held[0].tolist() == [1, 1, 1, 1]
