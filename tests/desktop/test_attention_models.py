"""The attention models fed through the session with real frames: the latest pattern per head,
bounded head-statistics history, ranks, new runs. No display needed."""

from __future__ import annotations

import numpy as np
import pytest

from synapse_desktop.models.attention import AttentionPatterns, HeadChoice, HeadStatsHistory
from synapse_desktop.models.session import Session
from synapse_native.protocol import AttentionPattern, HeadStats

from .frames import frame, trainer_hello

TOKENS = ("The", " cat", " sat", " on", " the", " mat")


def previous_token(t: int = len(TOKENS)) -> np.ndarray:
    """Each query attends to the token before it (the first one to itself)."""
    w = np.zeros((t, t), np.float32)
    w[0, 0] = 1.0
    w[np.arange(1, t), np.arange(t - 1)] = 1.0
    return w


def uniform(t: int = len(TOKENS)) -> np.ndarray:
    """Each query attends evenly to itself and every earlier token."""
    w = np.tril(np.ones((t, t), np.float32))
    return w / w.sum(axis=1, keepdims=True)


def pattern(
    pairs: list[tuple[int, int]], weights: list[np.ndarray], tokens=TOKENS
) -> AttentionPattern:  # type: ignore[no-untyped-def]
    layers, heads = zip(*pairs, strict=True)
    return AttentionPattern(tuple(tokens), np.array(layers), np.array(heads), np.stack(weights))


def head_stats(
    layers: list[int], entropy: np.ndarray, max_logit: np.ndarray | None = None
) -> HeadStats:
    entropy = np.asarray(entropy, np.float32)
    logits = entropy * 2 if max_logit is None else np.asarray(max_logit, np.float32)
    return HeadStats(np.array(layers), entropy, logits, len(TOKENS))


def test_the_latest_pattern_of_each_head_is_kept_with_its_tokens_and_step() -> None:
    session = Session()
    heard: list[int] = []
    session.attention.changed.connect(lambda: heard.append(1))
    session.apply_frame(
        frame(pattern([(0, 1), (2, 3)], [previous_token(), uniform()]), seq=1, step=10, ts=77)
    )
    assert heard == [1]
    first = session.attention.pattern(0, 1)
    assert first is not None
    assert (first.step, first.tokens, first.timestamp_ns) == (10, TOKENS, 77)
    assert first.weights == pytest.approx(previous_token(), abs=1e-3)
    assert session.attention.pattern(2, 3).weights == pytest.approx(uniform(), abs=1e-3)  # type: ignore[union-attr]
    assert session.attention.pattern(1, 1) is None
    assert session.attention.pairs() == [(0, 1), (2, 3)]
    other = ("A", "B", "C")
    session.apply_frame(frame(pattern([(0, 1)], [uniform(3)], tokens=other), seq=2, step=20))
    newer = session.attention.pattern(0, 1)
    assert newer is not None and (newer.step, newer.tokens) == (20, other)
    assert newer.weights.shape == (3, 3)
    assert session.attention.pattern(2, 3).step == 10  # type: ignore[union-attr]
    assert len(session.attention) == 2  # one per head, however many frames came


def test_an_older_pattern_arriving_late_never_replaces_a_newer_one() -> None:
    session = Session()
    session.apply_frame(frame(pattern([(1, 0)], [previous_token()]), seq=1, step=50))
    session.apply_frame(frame(pattern([(1, 0), (1, 1)], [uniform(), uniform()]), seq=2, step=40))
    kept = session.attention.pattern(1, 0)
    assert kept is not None and kept.step == 50
    assert kept.weights == pytest.approx(previous_token(), abs=1e-3)
    assert session.attention.pattern(1, 1).step == 40  # type: ignore[union-attr]


def test_head_stats_keep_the_latest_step_and_a_bounded_history() -> None:
    session = Session(history_capacity=4)
    for step in range(10, 17):
        entropy = np.full((2, 3), step, np.float32)
        session.apply_frame(frame(head_stats([0, 1], entropy), seq=step, step=step))
    latest = session.head_stats.latest()
    assert latest is not None
    assert latest.step == 16 and latest.layers == (0, 1)
    assert latest.entropy == pytest.approx(np.full((2, 3), 16.0))
    assert latest.max_logit == pytest.approx(np.full((2, 3), 32.0))
    assert latest.tokens == len(TOKENS)
    steps, values = session.head_stats.series(1, 2, "entropy")
    assert steps.tolist() == [13, 14, 15, 16] and values.tolist() == [13, 14, 15, 16]
    assert len(session.head_stats) == 4
    session.apply_frame(frame(head_stats([0, 1], np.zeros((2, 3))), seq=30, step=12))
    assert session.head_stats.latest().step == 16  # type: ignore[union-attr]
    assert session.head_stats.series(0, 0, "entropy")[0].tolist() == [13, 14, 15, 16]


def test_head_stats_of_new_layers_and_pipeline_stages_fill_one_step() -> None:
    history = HeadStatsHistory(8)
    history.apply(head_stats([4, 5], np.full((2, 2), 1.0)), step=3, rank=0)
    history.apply(head_stats([0, 1], np.full((2, 2), 2.0)), step=3, rank=0)
    latest = history.latest()
    assert latest is not None and latest.layers == (0, 1, 4, 5)
    assert latest.entropy[:, 0].tolist() == [2.0, 2.0, 1.0, 1.0]
    assert latest.reported.all()
    history.apply(head_stats([4, 5], np.full((2, 2), 3.0)), step=4, rank=0)
    newer = history.latest()
    assert newer is not None and newer.reported.tolist() == [False, False, True, True]
    assert np.isnan(newer.entropy[0]).all()
    assert newer.row_of(5) == 3 and newer.row_of(2) == -1


def test_the_merged_head_stats_are_the_mean_across_ranks_at_the_step_all_sent() -> None:
    session = Session()
    for rank, value in ((0, 1.0), (1, 3.0)):
        session.apply_frame(frame(trainer_hello(), seq=0, rank=rank))
        for step in (5, 6):
            entropy = np.full((2, 2), value + step, np.float32)
            session.apply_frame(frame(head_stats([0, 1], entropy), seq=step, step=step, rank=rank))
    session.apply_frame(frame(head_stats([0, 1], np.full((2, 2), 9.0)), seq=7, step=7, rank=0))
    merged = session.head_stats.latest()
    assert merged is not None
    assert merged.step == 6  # rank 1 has not sent step 7 yet
    assert merged.entropy == pytest.approx(np.full((2, 2), (7.0 + 9.0) / 2))
    assert session.head_stats.latest(rank=0).step == 7  # type: ignore[union-attr]
    assert session.head_stats.latest(rank=1).entropy[0, 0] == 9.0  # type: ignore[union-attr]
    assert session.head_stats.latest(rank=2) is None
    steps, values = session.head_stats.series(0, 0, "entropy")
    assert steps.tolist() == [5, 6] and values.tolist() == [7.0, 8.0]


def test_a_nan_a_rank_measured_stays_visible_in_the_merged_mean() -> None:
    history = HeadStatsHistory(8)
    history.apply(head_stats([0], np.array([[1.0, np.nan]])), step=1, rank=0)
    history.apply(head_stats([0], np.array([[3.0, 2.0]])), step=1, rank=1)
    merged = history.latest()
    assert merged is not None
    assert merged.entropy[0, 0] == 2.0 and np.isnan(merged.entropy[0, 1])


def test_merged_patterns_come_from_the_lowest_rank_that_has_the_head() -> None:
    session = Session()
    session.apply_frame(frame(pattern([(0, 0)], [uniform()]), seq=1, step=5, rank=1))
    session.apply_frame(frame(pattern([(0, 0)], [previous_token()]), seq=1, step=5, rank=0))
    session.apply_frame(frame(pattern([(7, 0)], [uniform()]), seq=2, step=5, rank=1))
    assert session.attention.pattern(0, 0).rank == 0  # type: ignore[union-attr]
    assert session.attention.pattern(0, 0, rank=1).weights == pytest.approx(uniform(), abs=1e-3)  # type: ignore[union-attr]
    assert session.attention.pattern(7, 0).rank == 1  # type: ignore[union-attr]  # a later stage
    assert session.attention.pattern(7, 0, rank=0) is None
    assert session.attention.ranks() == [0, 1]


def test_a_new_run_forgets_patterns_and_head_stats() -> None:
    session = Session()
    session.apply_frame(frame(trainer_hello(), seq=0))
    session.apply_frame(frame(pattern([(0, 0)], [uniform()]), seq=1, step=100))
    session.apply_frame(frame(head_stats([0], np.ones((1, 2))), seq=2, step=100))
    heard: list[str] = []
    session.attention.changed.connect(lambda: heard.append("patterns"))
    session.head_stats.changed.connect(lambda: heard.append("stats"))
    session.apply_frame(frame(trainer_hello(), seq=0))  # the trainer restarted
    session.apply_frame(frame(head_stats([0], np.full((1, 2), 5.0)), seq=1, step=3))
    assert session.attention.pattern(0, 0) is None
    latest = session.head_stats.latest()
    assert latest is not None and latest.step == 3 and latest.entropy[0, 0] == 5.0
    assert sorted(heard) == ["patterns", "stats"]


def test_the_choice_notifies_only_on_change_and_checks_the_statistic() -> None:
    choice = HeadChoice()
    heard: list[int] = []
    choice.changed.connect(lambda: heard.append(1))
    choice.choose(2, 3)
    choice.choose(2, 3)
    choice.show("max_logit")
    choice.focus(4)
    assert (choice.layer, choice.head, choice.statistic, choice.query) == (2, 3, "max_logit", 4)
    assert len(heard) == 3
    with pytest.raises(ValueError, match="statistic"):
        choice.show("variance")


def test_patterns_are_bounded_per_rank_dropping_the_oldest_steps() -> None:
    patterns = AttentionPatterns(capacity=3)
    for step, head in enumerate(range(5)):
        patterns.apply(pattern([(0, head)], [uniform()]), step=10 + step, rank=0)
    assert patterns.pairs() == [(0, 2), (0, 3), (0, 4)]
    patterns.apply(pattern([(0, 3)], [uniform()]), step=20, rank=0)  # a held head: no drop
    assert patterns.pairs() == [(0, 2), (0, 3), (0, 4)]
