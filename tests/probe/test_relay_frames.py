"""The relay of one rank in full, without processes: what a trainer accepts and what it packs."""

from __future__ import annotations

import numpy as np
import pytest

from synapse_native.protocol import (
    NO_FULL_RANK,
    SUMMARY_DTYPE,
    LayerSummaryBatch,
    ProbeCost,
    ProtocolError,
    SparseActivations,
    encode,
)
from synapse_probe.ranks import relay_frames
from synapse_serve.control import full_rank_errors


def _sparse(site: int, values: list[float]) -> SparseActivations:
    indices = np.arange(len(values), dtype=np.uint32)
    return SparseActivations(site, 1.0, len(values), indices, np.asarray(values, np.float32))


def test_a_job_takes_its_ranks_or_none_and_nothing_else() -> None:
    assert full_rank_errors(0, 4) == [] and full_rank_errors(3, 4) == []
    assert full_rank_errors(NO_FULL_RANK, 4) == []
    assert full_rank_errors(4, 4) == ["full_rank 4 is not a rank of this job (0..3, or none)"]
    assert "RANK_RELAY" in full_rank_errors(0, 0)[0]  # a trainer serving no job


def test_only_the_full_frames_travel_and_come_back_whole() -> None:
    sparse = [_sparse(1, [2.0, 3.0]), _sparse(4, [])]
    cost = ProbeCost(0.01, 0.005, 1, 1, 1, 1, 1)
    summary = LayerSummaryBatch(np.zeros(2, SUMMARY_DTYPE))
    data = relay_frames.pack([summary, sparse[0], cost, sparse[1]], step=7, rank=2)
    back = relay_frames.unpack(data)
    assert [m.site_id for m in back] == [1, 4]  # summaries are merged, costs stay home
    np.testing.assert_array_equal(back[0].values, sparse[0].values)
    assert relay_frames.unpack(b"") == []


def test_a_cut_or_foreign_frame_is_refused() -> None:
    data = relay_frames.pack([_sparse(1, [2.0])], step=7, rank=2)
    with pytest.raises(ProtocolError):
        relay_frames.unpack(data[:-4])
    summary = encode(LayerSummaryBatch(np.zeros(1, SUMMARY_DTYPE)), seq=0, step=7, rank=2)
    with pytest.raises(ProtocolError, match="foreign"):
        relay_frames.unpack(data + summary)
