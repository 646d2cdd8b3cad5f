"""The early warnings (no display): each detector fires once per episode on the signal it
watches, says what it saw with the evidence, and stays quiet on noise."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from synapse_desktop.models.anomalies import AlertKind, Severity
from synapse_desktop.models.early_warning import Check, Rule, Series
from synapse_desktop.models.session import Session
from synapse_native.protocol import (
    BlockGradNorms,
    HeadStats,
    LayerSummaryBatch,
    OptimizerStats,
    TrainingMetrics,
)

from .frames import frame, meta, summaries

N_LAYERS = 4


class Stream:
    """A session fed real frames, one step at a time."""

    def __init__(self) -> None:
        self.session = Session(history_capacity=64)
        anomalies = self.session.anomalies
        anomalies.config = replace(anomalies.config, warmup_steps=0)  # alert from the start
        self.seq = 1
        self.session.apply_frames([frame(meta(N_LAYERS), seq=1)])

    def send(self, message, step: int) -> None:  # type: ignore[no-untyped-def]
        self.seq += 1
        self.session.apply_frames([frame(message, seq=self.seq, step=step)])

    def alerts(self, kind: AlertKind | None = None) -> list:  # type: ignore[type-arg]
        return [a for a in self.session.anomalies.alerts if kind is None or a.kind is kind]


def noise(step: int, scale: float = 0.02) -> float:
    return 1.0 + scale * np.sin(1.7 * step) + scale * np.cos(0.3 * step)


def test_a_spike_score_fires_once_per_episode_and_rearms() -> None:
    series = Series(Rule(Check.SCORE, 6.0, 3.0, floor=1.1, window=32, min_samples=8), "x")
    found = [series.check(s, [noise(s)]) for s in range(40)]
    assert found == [None] * 40
    spike = series.check(40, [5.0])
    assert spike is not None and spike.value == 5.0 and spike.rows == 1
    assert spike.baseline == pytest.approx(1.0, abs=0.05) and 1.0 < spike.limit < 5.0
    assert spike.evidence.steps[-1] == 40 and spike.evidence.values[-1] == 5.0
    assert len(spike.evidence.steps) == 32 + 1  # the window, then the alert's sample
    assert series.check(41, [5.5]) is None  # the same episode
    assert series.check(42, [1.0]) is None  # back: re-armed
    assert series.check(43, [9.0]) is not None
    assert series.check(43, [9.0]) is None  # a step already judged is ignored


def test_a_confirmed_rule_ignores_one_outlier_and_quiet_warm_up_learns_the_baseline() -> None:
    series = Series(Rule(Check.RATIO, 2.0, 1.5, window=16, min_samples=4, confirm=2), "x")
    for s in range(10):
        assert series.check(s, [1.0], armed=False) is None
    assert series.check(10, [5.0], armed=False) is None  # warm-up: learnt, not judged
    assert series.check(11, [1.0]) is None
    assert series.check(12, [3.0]) is None  # one outlier
    assert series.check(13, [1.0]) is None
    assert series.check(14, [3.0]) is None
    found = series.check(15, [3.0])  # the second in a row
    assert found is not None and found.baseline == 1.0 and found.limit == 2.0


def test_an_unconfirmed_outlier_stays_out_of_the_baseline_but_in_the_evidence() -> None:
    series = Series(
        Rule(Check.SCORE, 6.0, 3.0, floor=2.0, window=64, min_samples=8, confirm=2), "x"
    )
    for s in range(40):
        assert series.check(s, [noise(s)]) is None
    assert series.check(40, [50.0]) is None  # one odd batch, not confirmed
    assert series.check(41, [1.0]) is None
    # Had the outlier been learnt, its spread (std ~7.7) would hide the spike that holds.
    assert series.check(42, [5.0]) is None
    found = series.check(43, [5.0])
    assert found is not None and found.baseline == pytest.approx(1.0, abs=0.05)
    assert found.evidence.steps[-2:] == (42, 43) and found.evidence.values[-2:] == (5.0, 5.0)
    assert 40 in found.evidence.steps  # shown, though not learnt


def test_growing_attention_logits_warn_at_their_layer_before_they_are_huge() -> None:
    stream = Stream()
    for step in range(40):
        logits = np.full((N_LAYERS, 2), 4.0) * noise(step)
        if step >= 30:
            logits[2, 1] *= 1.2 ** (step - 29)
        stream.send(HeadStats(np.arange(N_LAYERS), np.ones((N_LAYERS, 2)), logits, 16), step)
    (alert,) = stream.alerts()
    assert alert.kind is AlertKind.LOGIT_GROWTH and (alert.layer, alert.site) == (2, "attn")
    assert alert.step == 37  # over 2.5x its median from step 35 (1.2^6), three samples running
    assert alert.evidence is not None and alert.evidence.baseline == pytest.approx(4, rel=0.05)
    assert "max attention logit" in alert.message
    # and past QK-Clip's cap of 100, a level alert
    big = np.full((N_LAYERS, 2), 4.0)
    big[1, 0] = 150.0
    stream.send(HeadStats(np.arange(N_LAYERS), np.ones((N_LAYERS, 2)), big, 16), 41)
    assert [a.layer for a in stream.alerts(AlertKind.LOGIT_LEVEL)] == [1]


def test_loss_spikes_and_a_non_finite_loss_are_errors() -> None:
    stream = Stream()
    for step in range(30):
        stream.send(TrainingMetrics({"loss": 2.5 * noise(step), "lr": 1e-3}), step)
    assert stream.alerts() == []
    stream.send(TrainingMetrics({"loss": 4.0}), 30)
    (spike,) = stream.alerts()
    assert spike.kind is AlertKind.LOSS_SPIKE and spike.severity is Severity.ERROR
    assert spike.message.startswith("training loss: loss 4, spike score")
    stream.send(TrainingMetrics({"loss": float("nan")}), 31)
    assert stream.alerts()[-1].message == "training loss: loss is nan"
    stream.send(TrainingMetrics({"loss": float("nan")}), 32)
    assert len(stream.alerts()) == 2  # one per episode


def test_optimizer_stats_warn_of_update_jumps_and_second_moment_collapse() -> None:
    stream = Stream()
    layers = np.arange(N_LAYERS)
    for step in range(20):
        ratio = np.full(N_LAYERS, 1e-3) * noise(step)
        below = np.full(N_LAYERS, 0.5) * noise(step)
        stream.send(OptimizerStats(layers, ratio, np.ones(N_LAYERS), below), step)
    assert stream.alerts() == []
    ratio = np.full(N_LAYERS, 1e-3)
    ratio[3] = 0.05  # a learning-rate spike shows in the update at once
    below = np.full(N_LAYERS, 0.5)
    below[[0, 1]] = 0.97  # g^2 above Adam's second moment almost everywhere
    stream.send(OptimizerStats(layers, ratio, np.ones(N_LAYERS), below), 20)
    update, moment = stream.alerts()
    assert update.kind is AlertKind.UPDATE_SPIKE and update.layer == 3
    assert "update ratio 0.05 = 50" in update.message
    assert moment.kind is AlertKind.SECOND_MOMENT and moment.layer in (0, 1)
    assert "(+1 more block)" in moment.message


def test_non_finite_gradients_are_named_once_per_episode() -> None:
    stream = Stream()
    norms = np.ones(N_LAYERS, np.float32)
    stream.send(BlockGradNorms(norms), 1)
    bad = norms.copy()
    bad[2:] = np.nan
    stream.send(BlockGradNorms(bad), 2)
    stream.send(BlockGradNorms(bad), 3)  # the same episode
    stream.send(OptimizerStats(np.arange(N_LAYERS), norms, norms, norms), 3)  # another source
    stream.send(BlockGradNorms(bad), 4)
    (alert,) = stream.alerts()
    assert alert.kind is AlertKind.NONFINITE and alert.severity is Severity.ERROR
    assert alert.message.startswith("layer 2 gradients: non-finite gradients")
    assert "1 more block" in alert.message


def test_a_gradient_norm_spike_that_holds_names_its_block_and_one_odd_batch_does_not() -> None:
    stream = Stream()
    for step in range(40):
        stream.send(BlockGradNorms(np.full(N_LAYERS, 0.8 * noise(step), np.float32)), step)
    quiet = np.full(N_LAYERS, 0.8, np.float32)
    spiked = quiet.copy()
    spiked[1] = 8.0
    stream.send(BlockGradNorms(spiked), 40)  # one odd batch: back at the next step
    stream.send(BlockGradNorms(quiet), 41)
    assert stream.alerts() == []
    stream.send(BlockGradNorms(spiked), 42)
    stream.send(BlockGradNorms(spiked), 43)  # two steps running
    (alert,) = stream.alerts()
    assert alert.kind is AlertKind.GRAD_SPIKE and (alert.layer, alert.step) == (1, 43)
    assert alert.evidence is not None
    assert alert.evidence.baseline == pytest.approx(0.8, rel=0.05)  # the odd batch not learnt


def test_output_norm_growth_of_attention_and_mlp_sites_only() -> None:
    stream = Stream()
    n_sites = 3 * N_LAYERS  # attn, mlp, residual per layer
    for step in range(30):
        stream.send(summaries(list(range(n_sites)), noise(step)), step)
    records = summaries(list(range(n_sites)), 1.0).records.copy()
    records["rms"][3 * 1 + 0] = 5.0  # layer 1 attn
    records["rms"][3 * 2 + 2] = 5.0  # layer 2 residual: not an output that warns
    stream.send(LayerSummaryBatch(records), 30)
    (alert,) = stream.alerts()
    assert alert.kind is AlertKind.NORM_GROWTH and (alert.layer, alert.site) == (1, "attn")
    assert alert.evidence is not None and alert.evidence.steps[-1] == 30


def test_a_site_dead_from_its_first_step_is_not_an_alert() -> None:
    stream = Stream()
    n_sites = 3 * N_LAYERS
    config = stream.session.anomalies.config
    for step in range(3 * config.dead_steps):
        records = summaries(list(range(n_sites)), 1.0).records.copy()
        records["frac_zero"][4] = 1.0  # layer 1 mlp, dead from the start (built that way)
        if step >= config.dead_steps:
            records["frac_zero"][7] = 1.0  # layer 2 mlp, alive first, then dead
        stream.send(LayerSummaryBatch(records), step)
    (alert,) = stream.alerts()
    assert alert.kind is AlertKind.DEAD and (alert.layer, alert.site) == (2, "mlp")
