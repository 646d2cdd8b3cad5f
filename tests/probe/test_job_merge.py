"""The job's arithmetic without processes: merged records equal the statistics of every rank's
elements taken together, the skew names the rank that stands out, and ``synapse sim --ranks``
streams the job stream."""

from __future__ import annotations

import numpy as np
import pytest
from probe_reference import summary

from synapse_native.client import StreamClient
from synapse_native.protocol import (
    NO_RANK,
    SUMMARY_DTYPE,
    Capability,
    HeaderFlag,
    JobState,
    JobStatus,
    LayerSummaryBatch,
    MsgType,
    RankSkew,
    SkewStatistic,
)
from synapse_probe.ranks.job import apply_at, wanted_interval
from synapse_serve import job_merge
from synapse_serve.sim import SimOptions, Simulator

THRESHOLD = 1.0


def _records(per_site: list[np.ndarray]) -> np.ndarray:
    out = np.zeros(len(per_site), SUMMARY_DTYPE)
    for i, values in enumerate(per_site):
        with np.errstate(invalid="ignore"):  # a constant rank: the reference's 0 / 0
            stats = summary(values, THRESHOLD)
        out[i]["site_id"] = i
        for name, value in stats.items():
            out[i][name] = value
    out["threshold"] = THRESHOLD
    return out


def test_merged_records_are_the_statistics_of_all_elements_together() -> None:
    rng = np.random.default_rng(3)
    sizes = [150, 40, 300, 90]  # ranks see batches of different sizes
    data = [
        [rng.normal(0.5 * r, 1.0 + r, size).astype(np.float32) for r, size in enumerate(sizes)]
        for _site in range(3)
    ]
    data[1][2][:5] = np.nan  # one rank's NaNs are counted, not averaged
    data[2][0][:] = 0.0  # a rank whose site is all zeros
    per_rank = [_records([data[s][r] for s in range(3)]) for r in range(len(sizes))]
    rows = job_merge.Rows(8, grads=False)
    merged, skew = job_merge.merge_local(per_rank, rows, THRESHOLD)
    expected = _records([np.concatenate(data[s]) for s in range(3)])
    assert list(merged["site_id"]) == [0, 1, 2] and len(skew) == 3
    for name in ("count", "nan_count", "inf_count"):
        np.testing.assert_array_equal(merged[name], expected[name])
    for name in ("mean", "std", "rms", "min", "max", "mean_abs", "frac_zero", "frac_above", "hist"):
        np.testing.assert_allclose(merged[name], expected[name], rtol=1e-5, atol=1e-6, err_msg=name)
    for name in ("skewness", "kurtosis"):  # pooled from f32 moments: a little less exact
        np.testing.assert_allclose(merged[name], expected[name], rtol=1e-3, atol=1e-4, err_msg=name)


def test_skew_names_the_rank_that_stands_out_and_both_paths_agree() -> None:
    rng = np.random.default_rng(5)
    ranks, sites = 16, 6
    values = rng.normal(1.0, 0.02, (ranks, sites, job_merge.K))
    values[11, 4, 0] = 1.5  # rank 11's rms at site 4: 25 spreads from the others
    values[:, 5] = np.nan  # a site no rank reported
    rows = job_merge.Rows(8, grads=False)
    present = np.arange(sites)
    direct = job_merge.skew_of_ranks(values, rows, present)
    totals = np.sum([job_merge.skew_sums(v) for v in values], axis=0)
    keys = np.max(
        [job_merge.skew_keys(job_merge.local_z(v, totals), r) for r, v in enumerate(values)],
        axis=0,
    )
    won = np.sum([job_merge.winner_value(keys, v, r) for r, v in enumerate(values)], axis=0)
    reduced = job_merge.skew_message_records(keys, won, totals, rows, present)
    np.testing.assert_array_equal(direct["rank"], reduced["rank"])
    np.testing.assert_allclose(direct["z"], reduced["z"], atol=1e-3)  # keys: 1/1024 steps
    np.testing.assert_allclose(direct["others_std"], reduced["others_std"], rtol=1e-6)
    outlier = direct[4]
    assert outlier["rank"] == 11 and outlier["statistic"] == SkewStatistic.RMS
    others = np.delete(values[:, 4, 0], 11)
    assert outlier["z"] == pytest.approx((1.5 - others.mean()) / others.std(), rel=1e-5)
    assert direct[5]["rank"] == NO_RANK and np.isnan(direct[5]["z"])
    assert np.abs(np.delete(direct["z"], [4, 5])).max() < 5  # noise stays noise


def test_identical_ranks_are_not_outliers() -> None:
    values = np.ones((4, 2, job_merge.K))
    values[:, :, 2] = 0.0  # no NaN anywhere
    skew = job_merge.skew_of_ranks(values, job_merge.Rows(2, grads=False), np.arange(2))
    assert np.abs(skew["z"]).max() == 0.0


def test_plans_take_effect_on_an_epoch_after_the_next_and_intervals_follow_the_rate() -> None:
    assert apply_at(0) == 32 and apply_at(15) == 32 and apply_at(16) == 48
    assert wanted_interval(10.0, 1e9) == 1  # one-second steps: every one
    assert wanted_interval(10.0, 1e7) == 16  # 10 ms steps at 10 Hz: every 10th, rounded up
    assert wanted_interval(float("inf"), 1e6) == 1


@pytest.mark.timeout(60)
def test_sim_ranks_streams_a_job_whose_drifting_rank_the_skew_names() -> None:
    options = SimOptions(port=0, layers=8, ranks=64, drift_rank=37, drift_step=2, announce=False)
    with Simulator(options) as sim:
        client = StreamClient.connect(*sim.server.address, timeout=10)
        try:
            hello = client.hello.message
            assert hello.world_size == 64 and hello.capabilities & Capability.JOB
            for _ in range(8):
                sim.tick()
            frames = list(client.frames(timeout=2.0))
        finally:
            client.close()
    skews = [f for f in frames if isinstance(f.message, RankSkew)]
    batches = [f for f in frames if isinstance(f.message, LayerSummaryBatch)]
    status = [f.message for f in frames if isinstance(f.message, JobStatus)]
    assert len(skews) == len(batches) == 8
    assert all(f.header.flags & HeaderFlag.JOB for f in skews + batches)
    assert status[-1].state == JobState.RUNNING and status[-1].ranks_reporting == 64
    last = skews[-1].message
    assert isinstance(last, RankSkew)
    worst = last.records[np.nanargmax(np.abs(last.records["z"]))]
    assert worst["rank"] == 37 and worst["site_id"] == sim.job.drift_site and worst["z"] > 6
    first = skews[0].message.records  # before the drift: no rank stands far out
    assert np.nanmax(np.abs(first["z"])) < 6
    assert any(f.header.msg_type == MsgType.SPARSE_ACTIVATIONS for f in frames)
