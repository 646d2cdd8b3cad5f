"""``synapse sim --ranks N``: the stream a job's serving rank would send, from one process.

Each simulated rank sees the simulator's statistics scaled by a factor of its own (about 1, a
little noise per rank, site and step); from ``drift_step`` on, one rank's MLP output at one
block grows by 5 % a step, the way a rank that diverges does. The merged batch and the skew are
computed as the probe's reductions compute them (``job_merge``), vectorised over the ranks so
that 64 ranks cost little more than one. A rank followed in full (CONTROL FULL_RANK) gets the
simulator's sparse frames scaled by its factors. Numpy only.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from synapse_native.protocol import (
    NO_FULL_RANK,
    NO_RANK,
    HeaderFlag,
    JobState,
    JobStatus,
    LayerSummaryBatch,
    Message,
    RankSkew,
    SparseActivations,
)

from .. import job_merge
from ..job_merge import Rows

NOISE = 0.01  # per-rank spread of the scale factors
DRIFT_PER_STEP = 0.05  # the drifting rank's growth at its site


class SimJob:
    """Turns the simulator's one-rank step into the job stream of ``ranks`` ranks."""

    def __init__(
        self,
        ranks: int,
        n_sites: int,
        drift_site: int,
        *,
        drift_rank: int,
        drift_step: int,
        seed: int = 0,
    ) -> None:
        if not 2 <= ranks <= 65535:
            raise ValueError(f"--ranks must be in 2..65535, got {ranks}")
        if not 0 <= drift_rank < ranks:
            raise ValueError(f"--drift-rank must be a rank of the job (0..{ranks - 1})")
        self.ranks = ranks
        self.drift_rank, self.drift_step, self.drift_site = drift_rank, drift_step, drift_site
        self.rows = Rows(n_sites, grads=False)
        self._rng = np.random.default_rng(seed + 7919)

    def factors(self, step: int, site_ids: npt.NDArray[np.int64]) -> npt.NDArray[np.float64]:
        """(ranks, sites): how much larger each rank's activations are than the simulator's."""
        f = 1.0 + NOISE * self._rng.standard_normal((self.ranks, len(site_ids)))
        if step >= self.drift_step:
            grown = (1.0 + DRIFT_PER_STEP) ** (step - self.drift_step + 1)
            f[self.drift_rank, site_ids == self.drift_site] *= grown
        return f

    def messages(
        self, step: int, messages: Sequence[Message], relay: int = NO_FULL_RANK
    ) -> tuple[list[tuple[Message, int]], list[Message], list[Message]]:
        """(frames with their header flags, the rest of the step, rank ``relay``'s sparse
        frames when it is followed in full and not the serving rank 0) for the job stream."""
        if not messages or not isinstance(messages[0], LayerSummaryBatch):
            return [], list(messages), []
        base = messages[0].records
        f = self.factors(step, base["site_id"].astype(np.int64))
        merged = _merged(base, f)
        skew = self._skew(base, f)
        full = relay if 0 <= relay < self.ranks else NO_RANK
        status = JobStatus(
            self.ranks,
            JobState.RUNNING,
            0,
            last_step=step,
            ranks_reporting=self.ranks,
            full_rank=full,
        )
        job = int(HeaderFlag.JOB)
        head: list[tuple[Message, int]] = [
            (LayerSummaryBatch(merged), job),
            (status, 0),
            (RankSkew(self.ranks, skew), job),
        ]
        relayed = [] if full in (0, NO_RANK) else _scaled(messages, base, f[full])
        return head, list(messages[1:]), relayed

    def _skew(self, base: npt.NDArray[np.void], f: npt.NDArray[np.float64]) -> Any:
        """RANK_SKEW records: every rank's z at once, then the largest per site."""
        index, _ = self.rows.of(base)
        values = np.full((self.ranks, self.rows.count, job_merge.K), np.nan)
        rms = np.abs(base["rms"].astype(np.float64)) * f
        peak = np.maximum(np.abs(base["min"]), np.abs(base["max"])).astype(np.float64) * f
        values[:, index, 0], values[:, index, 1] = rms, peak
        values[:, index, 2] = 0.0
        return job_merge.skew_of_ranks(values, self.rows, np.sort(index))


def _scaled(
    messages: Sequence[Message], base: npt.NDArray[np.void], factors: npt.NDArray[np.float64]
) -> list[Message]:
    """One rank's sparse frames: the simulator's, scaled by the rank's factor at each site."""
    factor = dict(zip(base["site_id"].tolist(), factors.tolist(), strict=True))
    return [
        SparseActivations(
            m.site_id,
            m.threshold * factor.get(m.site_id, 1.0),
            m.n_above,
            m.indices,
            (m.values * factor.get(m.site_id, 1.0)).astype(np.float32),
        )
        for m in messages
        if isinstance(m, SparseActivations)
    ]


def _merged(base: npt.NDArray[np.void], f: npt.NDArray[np.float64]) -> npt.NDArray[np.void]:
    """The job's records: the simulator's scaled by the ranks' mean factor, counts summed,
    extremes over the ranks."""
    ranks = len(f)
    out = base.copy()
    mean = f.mean(axis=0)
    for name in ("mean", "std", "rms", "mean_abs"):
        out[name] = base[name] * mean
    out["max"] = base["max"] * f.max(axis=0)
    out["min"] = base["min"] * f.max(axis=0)
    for name in ("count", "nan_count", "inf_count"):
        out[name] = base[name] * ranks
    return out
