"""MoE routing and per-token residual models, fed real frames (no display): shares, CV, drop
fraction, the bounded ring, the merge across ranks, stale steps, and a new run."""

from __future__ import annotations

import numpy as np
import pytest

from synapse_desktop.models.ranks import MERGED
from synapse_desktop.models.routing import RoutingHistory
from synapse_desktop.models.session import Session
from synapse_native.protocol import (
    AttentionPattern,
    MoeRouting,
    ResidualTokens,
)

from .frames import frame, meta, trainer_hello

LAYERS = (1, 3)


def routing(tokens: list[list[int]], dropped: tuple[int, int] = (0, 0)) -> MoeRouting:
    counts = np.asarray(tokens, np.uint32)
    probs = np.full(counts.shape, 1.0 / counts.shape[1], np.float32)
    return MoeRouting(np.asarray(LAYERS, np.uint16), counts, probs, np.asarray(dropped), 2)


BALANCED = [[10] * 4, [10] * 4]
SKEWED = [[40, 0, 0, 0], [25, 5, 5, 5]]


def test_share_cv_and_drop_fraction_of_the_latest_step() -> None:
    session = Session()
    session.apply_frames(
        [
            frame(routing(BALANCED), seq=1, step=1),
            frame(routing(SKEWED, dropped=(4, 0)), seq=2, step=2),
        ]
    )
    window = session.routing.shown()
    assert window.steps.tolist() == [1, 2] and window.layers.tolist() == [1, 3]
    assert window.top_k == 2 and window.newest == 2
    share = window.share()
    assert share[0] == pytest.approx(np.full((2, 4), 0.25))
    assert share[1, 0] == pytest.approx([1.0, 0.0, 0.0, 0.0])
    assert share[1, 1] == pytest.approx([25 / 40, 5 / 40, 5 / 40, 5 / 40])
    cv = window.cv()
    assert cv[0] == pytest.approx([0.0, 0.0])
    assert cv[1, 0] == pytest.approx(np.std([40, 0, 0, 0]) / 10)
    assert cv[1, 1] == pytest.approx(np.std([25, 5, 5, 5]) / 10)
    assert window.drop_fraction()[1] == pytest.approx([4 / 40, 0.0])
    assert window.mean_share(2)[0] == pytest.approx([0.625, 0.125, 0.125, 0.125])
    assert window.idle_steps()[0].tolist() == [0, 1, 1, 1]
    assert window.probs()[1, 0] == pytest.approx([0.25] * 4)


def test_a_layer_without_assignments_has_no_share_nor_cv() -> None:
    history = RoutingHistory()
    history.append(0, 1, LAYERS, [[0] * 4, [1, 1, 1, 1]], np.zeros((2, 4)), [0, 0], 1)
    window = history.shown()
    assert np.isnan(window.share()[0, 0]).all() and np.isnan(window.cv()[0, 0])
    assert np.isnan(window.drop_fraction()[0, 0]) and window.cv()[0, 1] == 0.0


def test_the_ring_is_bounded_and_stale_steps_are_ignored() -> None:
    history = RoutingHistory(capacity=8)
    heard: list[int] = []
    history.changed.connect(lambda: heard.append(1))
    for step in range(20):
        assert history.append(0, step, LAYERS, [[step, 1, 1, 1]] * 2, np.zeros((2, 4)), [0, 0], 2)
    history.flush()
    assert len(heard) == 1
    window = history.shown()
    assert window.steps.tolist() == list(range(12, 20))
    assert window.tokens[:, 0, 0].tolist() == list(range(12, 20))
    # a repeat of the newest step, or an older one, changes nothing
    assert not history.append(0, 19, LAYERS, [[99, 1, 1, 1]] * 2, np.zeros((2, 4)), [0, 0], 2)
    assert not history.append(0, 3, LAYERS, [[99, 1, 1, 1]] * 2, np.zeros((2, 4)), [0, 0], 2)
    history.flush()
    assert len(heard) == 1 and history.shown().tokens[-1, 0, 0] == 19


def test_ranks_are_summed_per_step_and_each_rank_can_be_shown() -> None:
    session = Session()
    session.apply_frames(
        [
            frame(routing(BALANCED), seq=1, step=5, rank=0),
            frame(routing(SKEWED, dropped=(2, 2)), seq=1, step=5, rank=1),
            frame(routing(BALANCED), seq=2, step=6, rank=0),
        ]
    )
    assert session.routing.ranks == [0, 1]
    merged = session.routing.shown(MERGED)
    assert merged.steps.tolist() == [5, 6]
    assert merged.tokens[0, 0].tolist() == [50, 10, 10, 10]
    assert merged.dropped[0].tolist() == [2, 2]
    assert merged.tokens[1, 0].tolist() == [10] * 4  # rank 1 has not sent step 6 yet
    assert session.routing.shown(1).steps.tolist() == [5]
    assert session.routing.shown(1).tokens[0, 1].tolist() == [25, 5, 5, 5]
    assert session.routing.shown(0).tokens[:, 0, 0].tolist() == [10, 10]
    session.apply_frames([frame(routing(SKEWED), seq=2, step=6, rank=1)])
    assert session.routing.shown().tokens[1, 0].tolist() == [50, 10, 10, 10]


def test_new_layers_and_more_experts_grow_the_table() -> None:
    history = RoutingHistory()
    history.append(0, 1, [3], [[1, 2]], [[0.5, 0.5]], [0], 1)
    history.append(0, 2, [1], [[1, 1, 1, 1]], np.zeros((1, 4)), [0], 1)
    history.append(0, 3, [3], [[2, 2]], [[0.5, 0.5]], [0], 1)
    window = history.shown()
    assert window.layers.tolist() == [1, 3] and window.experts.tolist() == [4, 2]
    assert window.tokens[0, 1, :2].tolist() == [1, 2] and not window.present[0, 0]
    assert window.present[1].tolist() == [True, False]
    assert np.isnan(window.share()[2, 1, 2:]).all()  # layer 3 has two experts


def test_a_new_run_forgets_the_routing() -> None:
    session = Session()
    session.apply_frames([frame(trainer_hello(), seq=1), frame(routing(BALANCED), seq=2, step=50)])
    session.apply_frames([frame(trainer_hello(), seq=1), frame(routing(SKEWED), seq=2, step=3)])
    window = session.routing.shown()
    assert window.steps.tolist() == [3] and window.tokens[0, 0, 0] == 40


def test_residual_tokens_keep_the_latest_step_and_label_positions() -> None:
    session = Session()
    norms = np.arange(12, dtype=np.float32).reshape(2, 6)
    layers = np.array([2, 0], np.uint16)
    session.apply_frames(
        [frame(meta(3), seq=1), frame(ResidualTokens(layers, norms), seq=2, step=4)]
    )
    shown = session.residual_tokens.shown()
    assert shown is not None and shown.step == 4
    assert shown.layers.tolist() == [0, 2] and shown.norms[0].tolist() == norms[1].tolist()
    assert session.residual_tokens.labels(shown) == ("0", "1", "2", "3", "4", "5")
    session.apply_frames([frame(ResidualTokens(layers, norms * 0), seq=3, step=2)])  # older
    assert session.residual_tokens.shown().step == 4  # type: ignore[union-attr]
    tokens = ("The", " cat", " sat", " on", " the", " mat")
    pattern = AttentionPattern(
        tokens,
        np.array([0], np.uint16),
        np.array([0], np.uint16),
        np.tril(np.ones((1, 6, 6), np.float16)) / 6,
    )
    session.apply_frames([frame(pattern, seq=4, step=4)])
    assert session.residual_tokens.labels(shown) == tokens
