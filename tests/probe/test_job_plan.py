"""A job of one rank, in this process (gloo): the plan the serving rank proposes takes effect at
the step the rule says, every measured step is reduced (an empty one too), and the serving rank
sends the merged batch, the status and the skew."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import pytest
import torch.distributed as dist

from synapse_native.protocol import (
    ControlState,
    HeaderFlag,
    JobState,
    JobStatus,
    LayerSummaryBatch,
    ModelMeta,
    RankSkew,
    SiteInfo,
    SiteKind,
    summary_records,
)
from synapse_probe.ranks.job import Job, apply_at

STATE = ControlState(1.0, float("inf"), 14, False, 64)


class FakeServer:
    """What the job's serving rank talks to: CONTROL it hands out, frames it keeps."""

    def __init__(self) -> None:
        self.frames: list[tuple[Any, int, int]] = []  # (message, step, flags)
        self.next_state: ControlState | None = None

    def broadcast(self, message: Any, *, step: int, flags: int = 0) -> bool:
        self.frames.append((message, step, flags))
        return True

    def broadcast_step(self, messages: Sequence[Any], *, step: int) -> int:
        for m in messages:
            self.frames.append((m, step, 0))
        return len(messages)

    def poll_control(self) -> ControlState | None:
        state, self.next_state = self.next_state, None
        return state

    def close(self) -> None:
        pass


@pytest.fixture
def group(tmp_path) -> Iterator[None]:  # type: ignore[no-untyped-def]
    store = dist.FileStore(str(tmp_path / "store"), 1)
    dist.init_process_group("gloo", store=store, rank=0, world_size=1)
    yield
    dist.destroy_process_group()


def _records() -> np.ndarray:
    records = summary_records(2)
    records["site_id"] = [0, 1]
    records["count"] = 100
    records["mean"], records["std"], records["rms"] = 0.5, 1.0, np.hypot(0.5, 1.0)
    records["min"], records["max"], records["mean_abs"] = -2.0, 3.0, 0.9
    records["hist"][:, 32] = 1.0
    return records


def _wait(job: Job, rounds: int) -> None:
    end = time.monotonic() + 10
    while job.rounds < rounds and time.monotonic() < end:
        time.sleep(0.005)
    assert job.rounds >= rounds


def _serving_job(server: FakeServer, sites: tuple[SiteInfo, ...]) -> Job:
    """A one-rank job that serves through ``server``."""
    return Job(
        meta=ModelMeta("m", 1, sites),
        control=STATE,
        grads=False,
        start_server=lambda: server,
        timeout=5.0,
    )


@pytest.mark.timeout(60)
def test_the_serving_ranks_plan_applies_at_the_rule_step_and_steps_are_reduced(group) -> None:  # type: ignore[no-untyped-def]
    server = FakeServer()
    sites = tuple(SiteInfo(i, 0, SiteKind.MLP, f"mlp{i}", 8, 2, 4) for i in range(2))
    job = _serving_job(server, sites)
    try:
        assert job.serving and job.server is server
        assert job.due(0)
        job.broadcast_step([LayerSummaryBatch(_records())], step=0)
        _wait(job, 1)
        assert job.due(1)
        job.no_data(1)  # dropped here: reduced empty, nothing merged
        _wait(job, 2)
        merged = [(m, s, f) for m, s, f in server.frames if isinstance(m, LayerSummaryBatch)]
        assert [s for _, s, _ in merged] == [0]
        message, _, flags = merged[0]
        assert flags & HeaderFlag.JOB
        np.testing.assert_allclose(message.records["rms"], _records()["rms"], rtol=1e-6)
        np.testing.assert_array_equal(message.records["max"], _records()["max"])
        skews = [(m, f) for m, s, f in server.frames if isinstance(m, RankSkew)]
        assert len(skews) == 2 and all(f & HeaderFlag.JOB for _, f in skews)
        assert (skews[0][0].records["rank"] == 0xFFFF).all()  # one rank: nobody to differ from
        status = [m for m, _, _ in server.frames if isinstance(m, JobStatus)]
        assert status[-1].state == JobState.RUNNING and status[-1].last_step == 1

        # A CONTROL taken at a boundary rides with the next reduction and applies at the rule.
        server.next_state = ControlState(2.5, float("inf"), 14, False, 32)
        assert job.poll_control() is None  # not in force yet
        step = 2
        assert job.due(step)
        job.no_data(step)
        _wait(job, 3)
        effective = apply_at(step)
        adopted = None
        for s in range(step + 1, effective + 2):
            state = job.poll_control()
            if state is not None:
                adopted = (s, state)
                break
            if job.due(s):
                job.no_data(s)
        assert adopted is not None and adopted[1].threshold == 2.5 and adopted[1].top_k == 32
        assert adopted[0] == effective + 1  # handed to the probe at the boundary after it
    finally:
        job.close()


@pytest.mark.timeout(60)
def test_a_rank_whose_reductions_fall_an_epoch_behind_turns_its_probe_off(group) -> None:  # type: ignore[no-untyped-def]
    sites = (SiteInfo(0, 0, SiteKind.MLP, "mlp", 8, 2, 4),)
    job = Job(meta=ModelMeta("m", 1, sites), control=STATE, grads=False, timeout=8.0)
    try:
        start = time.monotonic()
        measured = [s for s in range(40) if job.due(s)]  # step 0's data never comes
        assert time.monotonic() - start < 0.5  # the training thread never waited
        assert measured == list(range(apply_at(0)))  # every step until the plan's step
        assert job.off and job.state == JobState.OUT_OF_STEP
    finally:
        job.close()


@pytest.mark.timeout(60)
def test_a_proposed_capture_rides_the_next_reduction_and_is_due_at_the_plan_step(group) -> None:  # type: ignore[no-untyped-def]
    server = FakeServer()
    sites = (SiteInfo(0, 0, SiteKind.MLP, "mlp", 8, 2, 4),)
    job = _serving_job(server, sites)
    try:
        job.propose_capture(77, (3, 0))
        assert job.due(0)
        job.no_data(0)
        _wait(job, 1)
        due = [(s, job.capture_due(s)) for s in range(1, apply_at(0) + 2)]
        taken = [(s, c) for s, c in due if c is not None]
        assert len(taken) == 1 and taken[0][0] == apply_at(0)  # once, at the plan's step
        capture = taken[0][1]
        assert (capture.serial, capture.request_id, capture.site_ids) == (1, 77, (3, 0))
    finally:
        job.close()
