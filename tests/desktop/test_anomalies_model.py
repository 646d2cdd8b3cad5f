"""Alerts from the activation summaries (no display): non-finite onsets, exploding norms, dead
sites, the bound, and a new run."""

from __future__ import annotations

import time
from dataclasses import replace

import numpy as np
import pytest

from synapse_desktop.models.anomalies import AlertKind, Anomalies, AnomalyConfig, Severity
from synapse_desktop.models.session import Session
from synapse_native.protocol import LayerSummaryBatch, SummaryFlag

from .frames import frame, meta, summaries, trainer_hello

N_LAYERS = 32
SITES = 3 * N_LAYERS  # attn, mlp, residual per layer; site id = 3 * layer + kind
MLP = 1


class Count:
    def __init__(self) -> None:
        self.n = 0

    def on(self) -> None:
        self.n += 1


class Feeder:
    """A session fed one whole step (all sites, one LAYER_SUMMARY_BATCH) at a time."""

    def __init__(self, n_layers: int = N_LAYERS, session: Session | None = None) -> None:
        self.session = session if session is not None else Session(history_capacity=64)
        anomalies = self.session.anomalies
        anomalies.config = replace(anomalies.config, warmup_steps=0)  # alert from the start
        self.n_sites = 3 * n_layers
        self.seq = 1
        self.session.apply_frames([frame(meta(n_layers), seq=self.seq)])

    def records(self, rms: float = 1.0) -> np.ndarray:
        records = summaries(list(range(self.n_sites)), rms).records.copy()
        records["frac_zero"] = 0.01
        return records

    def step(self, step: int, records: np.ndarray | None = None) -> None:
        self.seq += 1
        records = self.records() if records is None else records
        self.session.apply_frames([frame(LayerSummaryBatch(records), seq=self.seq, step=step)])

    @property
    def alerts(self):  # type: ignore[no-untyped-def]
        return list(self.session.anomalies.alerts)


def test_nan_propagating_downstream_gives_one_alert_naming_its_first_site() -> None:
    feed = Feeder()
    changed = Count()
    feed.session.anomalies.changed.connect(changed.on)
    for step in range(5):
        feed.step(step)
    assert feed.alerts == [] and changed.n == 0
    first = 3 * 5 + MLP  # layer 5 mlp
    for step in range(5, 40):  # the NaN stays from there on, in every later site
        records = feed.records()
        records["nan_count"][first:] = 7
        records["inf_count"][first + 4] = 2
        feed.step(step, records)
    alerts = feed.alerts
    assert len(alerts) == 1 and changed.n == 1
    alert = alerts[0]
    assert alert.kind is AlertKind.NONFINITE and alert.severity is Severity.ERROR
    assert (alert.step, alert.rank, alert.layer, alert.site, alert.site_id) == (5, 0, 5, "mlp", 16)
    downstream = SITES - first - 1  # layer 5 residual and layers 6..31
    assert alert.sites == downstream + 1
    assert alert.message.startswith("layer 5 mlp:")
    assert f"{downstream} sites downstream" in alert.message and "7 NaN" in alert.message
    # it goes away, then comes back at layer 9 attn: a new onset
    feed.step(40)
    records = feed.records()
    records["inf_count"][3 * 9] = 1
    feed.step(41, records)
    assert len(feed.alerts) == 2
    assert (feed.alerts[1].layer, feed.alerts[1].site, feed.alerts[1].step) == (9, "attn", 41)
    assert "1 inf" in feed.alerts[1].message and "0 sites downstream" in feed.alerts[1].message


def test_the_first_site_wins_when_a_step_comes_in_several_frames() -> None:
    feed = Feeder(n_layers=8)
    records = feed.records()
    records["nan_count"][3 * 2 :] = 1
    late, early = records[12:], records[:12]  # the deeper layers' frame first
    feed.session.apply_frames(
        [
            frame(LayerSummaryBatch(late), seq=2, step=3),
            frame(LayerSummaryBatch(early), seq=3, step=3),
        ]
    )
    (alert,) = feed.alerts
    assert (alert.layer, alert.site, alert.sites) == (2, "attn", 24 - 6)


def test_gradient_records_are_not_activation_alerts() -> None:
    feed = Feeder(n_layers=2)
    records = feed.records()
    records["flags"] = int(SummaryFlag.GRADIENT)
    records["nan_count"] = 3
    feed.step(1, records)
    assert feed.alerts == []


def test_an_rms_spike_gives_one_alert_per_episode() -> None:
    feed = Feeder(n_layers=4)
    site = 3 * 2 + 2  # layer 2 residual
    rng = np.random.default_rng(0)

    def step(s: int, factor: float = 1.0) -> None:
        records = feed.records()
        records["rms"] = 1.0 + 0.1 * rng.random(feed.n_sites)
        records["rms"][site] *= factor
        feed.step(s, records)

    for s in range(9):  # too few samples for a median: nothing
        step(s)
    step(9, 20.0)
    assert feed.alerts == []
    for s in range(10, 60):
        step(s)
    for s in range(60, 65):  # an episode of five steps: one alert
        step(s, 20.0)
    (alert,) = feed.alerts
    assert alert.kind is AlertKind.EXPLODING and alert.severity is Severity.WARNING
    assert (alert.step, alert.layer, alert.site, alert.sites) == (60, 2, "residual", 1)
    assert "x its median" in alert.message
    step(65, 7.0)  # still above the re-arm level (5x): the same episode
    step(66, 20.0)
    assert len(feed.alerts) == 1
    for s in range(67, 70):  # back down: re-armed
        step(s)
    step(70, 20.0)
    assert [a.step for a in feed.alerts] == [60, 70]
    step(71, 9.0)  # under 10x: no alert
    assert len(feed.alerts) == 2


def test_a_dead_site_after_n_steps_once() -> None:
    feed = Feeder(n_layers=4)
    config = feed.session.anomalies.config
    site = 3 * 3 + MLP
    alive = config.window  # steps alive first: the site's median is known

    def step(s: int, dead: bool) -> None:
        records = feed.records()
        if dead:  # the output collapses: mostly zeros, the rms 1e-6 of its level
            records["frac_zero"][site] = 0.995
            records["rms"][site] = 1e-6
        feed.step(s, records)

    for s in range(alive):
        step(s, False)
    for s in range(alive, alive + config.dead_steps - 1):
        step(s, True)
    assert feed.alerts == []
    step(alive + config.dead_steps - 1, True)
    (alert,) = feed.alerts
    assert alert.kind is AlertKind.DEAD and (alert.layer, alert.site) == (3, "mlp")
    assert f"dead for {config.dead_steps} measured steps" in alert.message
    assert "99.5% zeros, rms 1e-06 = 1e-06x its median 1)" in alert.message
    for s in range(alive + config.dead_steps, alive + 3 * config.dead_steps):
        step(s, True)
    assert len(feed.alerts) == 1
    for s in range(200, 200 + config.window):  # alive again, then dead again: a second alert
        step(s, False)
    for s in range(300, 300 + config.dead_steps):
        step(s, True)
    # (coming back from 1e-6 is an explosion against the ring's median: not counted here)
    dead = [a for a in feed.alerts if a.kind is AlertKind.DEAD]
    assert [a.step for a in dead] == [alive + config.dead_steps - 1, 300 + config.dead_steps - 1]
    # rms == 0 counts as dead as well, whatever frac_zero says
    records = feed.records()
    records["rms"][0] = 0.0
    for s in range(400, 400 + config.dead_steps):
        feed.step(s, records)
    assert feed.alerts[-1].kind is AlertKind.DEAD and feed.alerts[-1].site_id == 0


def test_a_sparse_site_whose_rms_holds_is_not_dead() -> None:
    """Most neurons of a layer die and the survivors carry its signal (arXiv 2309.04827): 99.5 %
    zeros at the site's usual rms is sparse, not dead; so is an rms down to 5 % of it (above
    ``dead_rms_fraction``), and a site of massive activations (arXiv 2402.17762) is judged
    against its own median, not the model's."""
    feed = Feeder(n_layers=4)
    config = feed.session.anomalies.config
    sparse, dimmed, massive = 3 * 0 + MLP, 3 * 1 + MLP, 3 * 2 + MLP
    rng = np.random.default_rng(0)
    for s in range(config.window + 5 * config.dead_steps):
        records = feed.records()
        records["rms"][massive] = 1e5
        if s >= config.window // 2:  # alive first (and its median known), then sparse
            noise = rng.uniform(0.8, 1.2, 3).astype(np.float32)
            records["frac_zero"][[sparse, dimmed, massive]] = 0.995
            records["rms"][[sparse, dimmed, massive]] = [1.0, 0.05, 1e5] * noise
        feed.step(s, records)
    assert feed.alerts == []


def test_a_collapsed_output_is_dead_against_the_median_before_it_fell() -> None:
    """The rms falls to 1e-6 of its median (or every value goes to zero): dead after
    ``dead_steps``, judged against the median the site had before its run began, so a run
    longer than half the window (whose own samples then fill the ring) still alerts; a massive
    site that collapses to the other sites' level is dead too."""
    feed = Feeder(n_layers=4)
    feed.session.anomalies.config = replace(feed.session.anomalies.config, dead_steps=40)
    config = feed.session.anomalies.config
    assert config.dead_steps > config.window // 2
    collapsed, zeros, massive = 3 * 0 + MLP, 3 * 1 + MLP, 3 * 2 + MLP
    fell = config.window
    for s in range(fell + config.dead_steps):
        records = feed.records()
        records["rms"][massive] = 1e5
        if s >= fell:
            records["frac_zero"][[collapsed, massive]] = 0.995
            records["rms"][[collapsed, massive]] = [1e-6, 1.0]
            records["frac_zero"][zeros] = 1.0
            records["rms"][zeros] = 0.0
        assert feed.alerts == [] or s == fell + config.dead_steps - 1
        feed.step(s, records)
    (alert,) = feed.alerts
    assert alert.kind is AlertKind.DEAD and alert.step == fell + config.dead_steps - 1
    assert alert.sites == 3 and (alert.layer, alert.site) == (0, "mlp")
    assert alert.message == (
        "layer 0 mlp: dead for 40 measured steps "
        "(99.5% zeros, rms 1e-06 = 1e-06x its median 1) (+2 more sites)"
    )


def test_a_site_dead_from_the_start_is_quiet_and_one_dying_early_is_judged_by_zeros() -> None:
    """A site dead from its first step on is how the model is built: no alert, whether its rms
    is 0 or it is all but silent at its own (tiny) level. One that dies before its median is
    known falls back to ``frac_zero`` alone, as before."""
    feed = Feeder(n_layers=4)
    config = feed.session.anomalies.config
    built_dead, built_faint, early = 3 * 0 + MLP, 3 * 1 + MLP, 3 * 2 + MLP
    for s in range(3 * config.dead_steps):
        records = feed.records()
        records["frac_zero"][built_dead] = 1.0
        records["rms"][built_dead] = 0.0
        records["frac_zero"][built_faint] = 0.995
        records["rms"][built_faint] = 1e-6
        if s >= 1:  # alive at step 0 only: no median yet
            records["frac_zero"][early] = 0.995
        feed.step(s, records)
    (alert,) = feed.alerts
    assert (alert.layer, alert.site, alert.sites, alert.step) == (2, "mlp", 1, config.dead_steps)
    assert alert.message.endswith("(99.5% zeros, rms 1, its median not known yet)")


def test_the_list_is_bounded_and_drops_the_oldest() -> None:
    session = Session()
    session.anomalies = Anomalies(session.topology, AnomalyConfig(capacity=5))
    feed = Feeder(n_layers=2, session=session)
    for s in range(20):  # every other step non-finite: an onset each time
        records = feed.records()
        if s % 2:
            records["nan_count"][0] = 1
        feed.step(s, records)
    alerts = feed.alerts
    assert len(alerts) == 5 and session.anomalies.total == 10
    assert [a.step for a in alerts] == [11, 13, 15, 17, 19]
    assert [a.step for a in session.anomalies.newest_first()] == [19, 17, 15, 13, 11]
    session.anomalies.clear()
    session.flush()
    assert len(session.anomalies) == 0 and session.anomalies.total == 0


def test_a_new_run_clears_the_alerts_and_the_detectors() -> None:
    feed = Feeder(n_layers=2)
    feed.session.apply_frames([frame(trainer_hello(), seq=0)])
    records = feed.records()
    records["nan_count"][1] = 1
    feed.step(500, records)
    assert len(feed.alerts) == 1
    changed = Count()
    feed.session.anomalies.changed.connect(changed.on)
    feed.seq = 0
    feed.session.apply_frames([frame(trainer_hello(), seq=0), frame(meta(2), seq=1)])
    feed.seq = 1
    feed.step(3, records)  # a step behind: a new run, whose NaN is a new onset
    assert changed.n == 1
    assert [a.step for a in feed.alerts] == [3]


def test_ranks_are_watched_apart_and_named() -> None:
    session = Session()
    session.apply_frames([frame(meta(2), seq=1, rank=0), frame(meta(2), seq=1, rank=1)])
    records = summaries(list(range(6)), 1.0).records.copy()
    records["nan_count"][4] = 1
    session.apply_frames(
        [
            frame(summaries(list(range(6)), 1.0), seq=2, step=1, rank=0),
            frame(LayerSummaryBatch(records), seq=2, step=1, rank=1),
        ]
    )
    (alert,) = session.anomalies.alerts
    assert alert.rank == 1 and alert.message.startswith("rank 1, layer 1 mlp")


def test_a_topology_rebuild_keeps_the_detector_state() -> None:
    feed = Feeder(n_layers=2)
    records = feed.records()
    records["nan_count"][5] = 1
    feed.step(1, records)
    assert len(feed.alerts) == 1
    feed.session.apply_frames([frame(meta(3, name="tiny"), seq=feed.seq + 1)])
    feed.seq += 1
    records = feed.records()
    records = np.concatenate([records, feed.records()[:3]])
    records["site_id"][-3:] = [6, 7, 8]
    records["nan_count"][5] = 1  # still the same episode
    feed.step(2, records)
    assert len(feed.alerts) == 1


def test_a_step_of_96_sites_costs_little() -> None:
    feed = Feeder()
    anomalies = feed.session.anomalies
    records = feed.records()
    indices = np.arange(SITES, dtype=np.int64)
    for s in range(60):
        anomalies.feed(0, indices, records, s)
    start = time.perf_counter()
    n = 200
    for s in range(60, 60 + n):
        anomalies.feed(0, indices, records, s)
    per_step = (time.perf_counter() - start) / n
    assert per_step < 2e-3, f"{per_step * 1e3:.2f} ms per step"


@pytest.mark.parametrize(
    "bad",
    [
        {"rearm_factor": 20.0},
        {"min_samples": 0},
        {"capacity": 0},
        {"dead_rms_fraction": 0.0},
        {"dead_rms_fraction": 1.0},
    ],
)
def test_bad_configs_are_refused(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        AnomalyConfig(**bad)  # type: ignore[arg-type]
