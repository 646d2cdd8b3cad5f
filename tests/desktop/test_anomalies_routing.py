"""Routing alerts (no display): an expert that receives no tokens, once per episode and named
with its layer; a layer that drops too many assignments."""

from __future__ import annotations

import numpy as np

from synapse_desktop.models.anomalies import AlertKind, Severity
from synapse_desktop.models.session import Session
from synapse_native.protocol import MoeRouting

from .frames import frame, meta

E = 8
MOE_LAYERS = (1, 2)


class Router:
    """A session fed one MOE_ROUTING frame per step (layers 1 and 2 of a 4-layer model)."""

    def __init__(self) -> None:
        self.session = Session()
        self.seq = 1
        self.session.apply_frames([frame(meta(4), seq=1)])

    def step(self, step: int, starve: int = -1, dropped: tuple[int, int] = (0, 0)) -> None:
        tokens = np.full((2, E), 16, np.uint32)
        if starve >= 0:
            tokens[1, starve] = 0  # layer 2
        probs = np.full((2, E), 1 / E, np.float32)
        message = MoeRouting(np.array(MOE_LAYERS, np.uint16), tokens, probs, np.array(dropped), 2)
        self.seq += 1
        self.session.apply_frames([frame(message, seq=self.seq, step=step)])

    @property
    def alerts(self):  # type: ignore[no-untyped-def]
        return list(self.session.anomalies.alerts)


def test_an_expert_without_tokens_for_n_steps_gives_one_alert_per_episode() -> None:
    feed = Router()
    n = feed.session.anomalies.config.idle_expert_steps
    assert n == 20
    for step in range(10):
        feed.step(step)
    for step in range(10, 10 + n - 1):
        feed.step(step, starve=5)
    assert feed.alerts == []  # n - 1 steps idle: not yet
    feed.step(10 + n - 1, starve=5)
    (alert,) = feed.alerts
    assert alert.kind is AlertKind.IDLE_EXPERT and alert.severity is Severity.WARNING
    assert (alert.layer, alert.expert, alert.step) == (2, 5, 10 + n - 1)
    assert alert.message == f"layer 2 experts: expert 5 received no tokens for {n} routing steps"
    site = feed.session.topology.sites[feed.session.topology.index_of(alert.site_id)]
    assert (site.layer, site.kind_name) == (2, "mlp")  # a click selects the layer's MLP site
    for step in range(30, 60):  # still idle: no second alert
        feed.step(step, starve=5)
    assert len(feed.alerts) == 1
    feed.step(60)  # it receives tokens again: the episode is over
    for step in range(61, 61 + n):
        feed.step(step, starve=5)
    assert len(feed.alerts) == 2 and feed.alerts[1].step == 60 + n


def test_stale_routing_frames_do_not_count_as_idle_steps() -> None:
    feed = Router()
    for step in range(15):
        feed.step(step, starve=3)
    for _ in range(10):  # the same step again: one routing step, not ten
        feed.step(14, starve=3)
    assert feed.alerts == []


def test_a_layer_dropping_too_many_assignments_is_alerted_once_per_episode() -> None:
    feed = Router()
    routed = 16 * E
    feed.step(0, dropped=(routed // 20, 0))  # 5%: under the 10% limit
    assert feed.alerts == []
    feed.step(1, dropped=(routed // 4, 0))
    (alert,) = feed.alerts
    assert alert.kind is AlertKind.DROPPING and alert.layer == 1 and alert.expert == -1
    assert "25.0% of the routed assignments dropped" in alert.message
    feed.step(2, dropped=(routed // 8, 0))  # 12.5%: still the same episode
    feed.step(3, dropped=(routed // 5, 0))
    assert len(feed.alerts) == 1
    feed.step(4)  # back to nothing dropped
    feed.step(5, dropped=(routed // 2, 0))
    assert len(feed.alerts) == 2


def test_a_new_run_forgets_the_idle_counts() -> None:
    feed = Router()
    for step in range(15):
        feed.step(step, starve=1)
    feed.session.reset_data()
    for step in range(10):
        feed.step(100 + step, starve=1)
    assert feed.alerts == []
