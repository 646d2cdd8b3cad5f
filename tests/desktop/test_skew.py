"""A job stream in the app's models: rank skew per site, its alert and tooltip, a lost rank."""

from __future__ import annotations

import numpy as np

from synapse_desktop.models.anomalies import AlertKind
from synapse_desktop.models.session import Session
from synapse_native.protocol import (
    NO_RANK,
    JobState,
    JobStatus,
    RankSkew,
    SkewStatistic,
    skew_records,
)

from .frames import frame, meta


def _skew(z_of_mlp1: float, seq: int, step: int) -> RankSkew:
    records = skew_records(3)
    records["site_id"] = [1, 4, 5]  # layer 0 mlp, layer 1 mlp, layer 1 residual
    records["rank"] = [3, 37, NO_RANK]
    records["statistic"] = [SkewStatistic.RMS, SkewStatistic.RMS, SkewStatistic.RMS]
    records["z"] = [1.5, z_of_mlp1, np.nan]
    records["value"] = [1.0, 9.0, np.nan]
    records["others_mean"] = [0.9, 1.0, np.nan]
    return RankSkew(64, records)


def test_skew_is_kept_per_site_and_an_outlier_raises_one_alert_per_episode() -> None:
    session = Session()
    session.apply_frames([frame(meta(n_layers=2), seq=0)])
    for step, z in enumerate([9.1, 9.5, 2.0, 7.0]):
        session.apply_frames([frame(_skew(z, 0, step), seq=step + 1, step=step)])
    skew = session.skew
    row = int(session.topology.indices_of(np.array([4]))[0])
    assert skew.active and skew.world_size == 64 and skew.rank[row] == 37
    assert skew.z[row] == np.float32(7.0)
    assert "rank 37 rms 9 is +7.0 sigma from the other ranks" in skew.describe(row)
    none = int(session.topology.indices_of(np.array([5]))[0])
    assert skew.describe(none) == ""
    colours = skew.colour_values()
    assert colours[row] == np.float32(7.0 / 12.0) and np.isnan(colours[none])
    alerts = [a for a in session.anomalies.alerts if a.kind is AlertKind.RANK_SKEW]
    assert [a.message for a in alerts] == [
        "rank 37 layer 1 mlp: rms 9.1 sigma from the other ranks",  # the first episode
        "rank 37 layer 1 mlp: rms 7.0 sigma from the other ranks",  # after z fell under 3
    ]
    assert [a.step for a in alerts] == [0, 3] and alerts[0].rank == 37


def test_a_lost_rank_becomes_an_error_alert_and_the_health_line_says_so() -> None:
    session = Session()
    session.apply_frames([frame(meta(n_layers=1), seq=0)])
    running = JobStatus(4, JobState.RUNNING, 0, last_step=7, ranks_reporting=4)
    session.apply_frames([frame(running, seq=1, step=7)])
    assert session.skew.health() == "job of 4 ranks, 4 reporting"
    lost = JobStatus(
        4,
        JobState.RANK_LOST,
        0,
        rank=3,
        last_step=8,
        ranks_reporting=4,
        since_ns=5,
        text="rank 3 stopped answering (a reduction failed)",
    )
    session.apply_frames([frame(lost, seq=2, step=8), frame(lost, seq=3, step=8)])
    stopped = [a for a in session.anomalies.alerts if a.kind is AlertKind.JOB_STOPPED]
    assert len(stopped) == 1 and stopped[0].rank == 3  # repeated status: one alert
    assert "rank 3 stopped answering" in stopped[0].message
    assert session.skew.health().startswith("job stream stopped: rank 3")


def test_synapse_tail_sums_up_job_frames() -> None:
    from synapse_desktop.commands.tail import summary

    assert summary(_skew(9.5, 0, 1)) == "3 sites, farthest: rank 37 site 4 rms z=+9.5"
    lost = JobStatus(4, JobState.RANK_LOST, 0, rank=3, ranks_reporting=4, text="gone")
    assert summary(lost) == "job of 4 ranks: RANK_LOST rank 3, 4 reporting gone"
