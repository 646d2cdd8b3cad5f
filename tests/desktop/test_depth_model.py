"""The depth profile model (no display): residual rms per layer and the attention and MLP
outputs relative to the stream entering each layer."""

from __future__ import annotations

import math

import numpy as np
import pytest

from synapse_desktop.models.depth import depth_profile
from synapse_desktop.models.session import Session
from synapse_native.protocol import LayerSummaryBatch, ModelMeta, SiteInfo, SiteKind

from .frames import frame, meta, summaries

N_LAYERS = 4
RMS = {  # (layer, kind): rms
    (layer, kind): (0.1 + layer) * (1, 0.2, 0.5)[k]
    for layer in range(N_LAYERS)
    for k, kind in enumerate((SiteKind.RESIDUAL, SiteKind.ATTN, SiteKind.MLP))
}


def _send(session: Session, values: dict[int, float], seq: int, step: int = 1) -> None:
    """One summary batch: rms ``values[site_id]`` for the given site ids."""
    batch = summaries(list(values), 1.0)
    records = batch.records.copy()
    records["rms"] = list(values.values())
    session.apply_frames([frame(LayerSummaryBatch(records), seq=seq, step=step)])


def _full_session() -> Session:
    session = Session()
    model = meta(N_LAYERS)
    session.apply_frames([frame(model, seq=1)])
    values = {s.site_id: RMS[(s.layer, SiteKind(s.kind))] for s in model.sites}
    _send(session, values, seq=2, step=5)
    return session


def test_known_rms_values_give_the_residual_norms_and_the_ratios() -> None:
    session = _full_session()
    profile = depth_profile(session.topology, session.stats)
    assert profile.layers.tolist() == list(range(N_LAYERS)) and len(profile) == N_LAYERS
    residual = [RMS[(i, SiteKind.RESIDUAL)] for i in range(N_LAYERS)]
    assert profile.residual_rms == pytest.approx(residual)
    assert profile.steps.tolist() == [5] * N_LAYERS
    # layer 0: no stream entering it is measured: its ratios are left out
    assert math.isnan(profile.stream_in[0])
    assert math.isnan(profile.attn_ratio[0]) and math.isnan(profile.mlp_ratio[0])
    for i in range(1, N_LAYERS):
        stream = RMS[(i - 1, SiteKind.RESIDUAL)]
        assert profile.stream_in[i] == pytest.approx(stream)
        assert profile.attn_ratio[i] == pytest.approx(RMS[(i, SiteKind.ATTN)] / stream)
        assert profile.mlp_ratio[i] == pytest.approx(RMS[(i, SiteKind.MLP)] / stream)
    assert profile.attn_ratio[2] == pytest.approx(2.1 * 0.2 / 1.1)
    sites = session.topology.sites
    assert [sites[i].kind for i in profile.residual_site] == [SiteKind.RESIDUAL] * N_LAYERS
    assert [sites[i].layer for i in profile.residual_site] == list(range(N_LAYERS))
    assert profile.row_of(3) == 3 and profile.row_of(9) == -1


def test_only_residual_sites_give_norms_and_no_ratios() -> None:
    """``per_block="residual"``: the model has no attention or MLP sites at all."""
    session = Session()
    sites = tuple(
        SiteInfo(layer, layer, SiteKind.RESIDUAL, f"layers.{layer}", 4096, 64, 64)
        for layer in range(N_LAYERS)
    )
    session.apply_frames([frame(ModelMeta("tiny", N_LAYERS, sites), seq=1)])
    _send(session, {i: 2.0**i for i in range(N_LAYERS)}, seq=2)
    profile = depth_profile(session.topology, session.stats)
    assert profile.residual_rms.tolist() == [1.0, 2.0, 4.0, 8.0]
    assert profile.stream_in[1:].tolist() == [1.0, 2.0, 4.0]
    assert np.isnan(profile.attn_ratio).all() and np.isnan(profile.mlp_ratio).all()
    assert np.isnan(profile.attn_rms).all()


def test_sites_not_received_yet_or_not_finite_leave_gaps() -> None:
    session = Session()
    session.apply_frames([frame(meta(N_LAYERS), seq=1)])
    empty = depth_profile(session.topology, session.stats)
    assert len(empty) == N_LAYERS and np.isnan(empty.residual_rms).all()
    assert empty.steps.tolist() == [-1] * N_LAYERS
    # layer 1's residual never arrives; layer 2's attention is NaN; layer 3's mlp is 0
    values = {s: 1.0 for s in range(3 * N_LAYERS)}
    del values[3 * 1 + 2]
    values[3 * 2 + 0] = math.nan
    values[3 * 3 + 1] = 0.0
    _send(session, values, seq=2)
    profile = depth_profile(session.topology, session.stats)
    assert math.isnan(profile.residual_rms[1]) and profile.residual_rms[2] == 1.0
    assert math.isnan(profile.stream_in[2])  # what enters layer 2 is layer 1's residual
    assert math.isnan(profile.attn_ratio[2]) and math.isnan(profile.mlp_ratio[2])
    assert profile.attn_ratio[3] == 1.0 and math.isnan(profile.mlp_ratio[3])
    assert profile.attn_ratio[1] == 1.0 and profile.mlp_ratio[1] == 1.0
    assert profile.steps.tolist() == [1, -1, 1, 1]


def test_no_sites_give_an_empty_profile() -> None:
    session = Session()
    assert len(depth_profile(session.topology, session.stats)) == 0


def test_a_gap_in_the_layer_ids_has_no_stream_entering() -> None:
    session = Session()
    sites = tuple(
        SiteInfo(i, layer, SiteKind.RESIDUAL, f"layers.{layer}", 64, 8, 8)
        for i, layer in enumerate((0, 1, 3))
    )
    session.apply_frames([frame(ModelMeta("gappy", 4, sites), seq=1)])
    _send(session, {0: 1.0, 1: 2.0, 2: 4.0}, seq=2)
    profile = depth_profile(session.topology, session.stats)
    assert profile.layers.tolist() == [0, 1, 3]
    assert profile.stream_in[1] == 1.0 and math.isnan(profile.stream_in[2])
