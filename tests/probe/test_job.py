"""The job stream: four gloo CPU ranks train a small model, their probes reduce, rank 0 serves.

One test process reads the one endpoint and checks: the merged records equal the ones numpy
computes from what each rank measured; the rank whose MLP output is scaled is named by the skew;
killing a rank ends in JOB_STATUS naming it within the timeout while the others keep training.
"""

from __future__ import annotations

import os
import queue
import socket
import time
from datetime import timedelta
from typing import Any

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from job_ranks import join_or_kill
from probe_models import batch, llama_like, lm_loss

pytest.importorskip("synapse_native.client")
from synapse_desktop.models.session import Session
from synapse_native.client import StreamClient
from synapse_native.protocol import (
    Capability,
    Frame,
    HeaderFlag,
    Hello,
    JobState,
    JobStatus,
    LayerSummaryBatch,
    ModelMeta,
    MsgType,
    RankSkew,
    SkewStatistic,
)

RANKS = 4
SCALED = 2  # this rank's layer-1 MLP output is 8x larger
STEPS = 4  # merged and compared
VICTIM = 3  # killed after the merged steps
JOB_TIMEOUT = 4.0
WAIT_S = 240.0  # four torch processes start slowly on a loaded 2-core machine


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _worker(rank: int, master: int, port: int, out: Any, go: Any, kill: Any, finish: Any) -> None:
    """One rank: its own model copy and data (no DDP, so a dead rank cannot stall training)."""
    import synapse_probe

    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(master)
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=RANKS, timeout=timedelta(seconds=60))
    torch.manual_seed(0)
    model = llama_like(n_layers=2)
    if rank == SCALED:
        model.model.layers[1].mlp.register_forward_hook(lambda m, a, out: out * 8.0)
    probe = synapse_probe.attach(
        model, port=port, rate_hz=1000.0, top_k=4, attention=False, job_timeout=JOB_TIMEOUT
    )
    job = probe.job
    assert job is not None and job.serving == (rank == 0)
    contribute = job.broadcast_step

    def tee(messages: Any, *, step: int) -> int:  # what this rank puts into the reduction
        if isinstance(messages[0], LayerSummaryBatch):
            out.put(("records", rank, step, messages[0].records.copy()))
        return contribute(messages, step=step)

    job.broadcast_step = tee  # type: ignore[method-assign]
    if rank == 0:
        out.put(("address", 0, 0, probe.address))
    if not go.wait(WAIT_S):
        raise TimeoutError("the test never connected")
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    step, slowest_after_kill, killed_at = 0, 0.0, None
    while not finish.is_set():
        if kill.is_set() and killed_at is None:
            if rank == VICTIM:
                os._exit(1)  # a rank that dies without a word
            killed_at = step
        began = time.monotonic()
        probe.step(step)
        ids, targets = batch(seed=100 * rank + step)
        lm_loss(model, ids, targets).backward()
        optimizer.step()
        optimizer.zero_grad()
        if killed_at is not None:
            slowest_after_kill = max(slowest_after_kill, time.monotonic() - began)
        step += 1
        if step == STEPS + 1:
            out.put(("trained", rank, step, None))
        time.sleep(0.1)  # a step rate the encoders of four ranks keep up with on two cores
    out.put(("after", rank, step - (killed_at or 0), (job.off, job.state, slowest_after_kill)))
    probe.close()
    out.close()
    out.join_thread()  # the queue's feeder thread: flushed before _exit, not lost
    os._exit(0)  # leave the broken group without a collective teardown


def _merge(per_rank: list[np.ndarray]) -> dict[str, np.ndarray]:
    """The job's statistics from each rank's records, straight from their definitions."""
    r = np.stack(per_rank)  # (ranks, sites)
    count = r["count"].astype(np.float64)
    n = count - r["nan_count"] - r["inf_count"]
    w = n / n.sum(axis=0)
    mean = (w * r["mean"]).sum(axis=0)
    second = (w * (r["std"].astype(np.float64) ** 2 + r["mean"].astype(np.float64) ** 2)).sum(0)
    return {
        "count": count.sum(axis=0),
        "mean": mean,
        "std": np.sqrt(second - mean**2),
        "rms": np.sqrt(second),
        "min": r["min"].min(axis=0),
        "max": r["max"].max(axis=0),
        "mean_abs": (w * r["mean_abs"]).sum(axis=0),
        "frac_above": (w * r["frac_above"]).sum(axis=0),
        "hist": (w[..., None] * r["hist"]).sum(axis=0),
    }


@pytest.mark.timeout(600)
def test_four_ranks_one_endpoint_merged_skewed_and_a_killed_rank(caplog) -> None:  # type: ignore[no-untyped-def]
    ctx = mp.get_context("spawn")
    out, go, kill, finish = ctx.Queue(), ctx.Event(), ctx.Event(), ctx.Event()
    processes = mp.start_processes(
        _worker,
        args=(_free_port(), _free_port(), out, go, kill, finish),
        nprocs=RANKS,
        join=False,
        start_method="spawn",
    )
    client: StreamClient | None = None
    records: dict[tuple[int, int], np.ndarray] = {}
    after: dict[int, Any] = {}
    deadline = time.monotonic() + WAIT_S

    def take(kind: str, until: Any) -> None:
        while not until():
            if time.monotonic() > deadline:
                raise TimeoutError(f"waiting for {kind} ({sorted(records)})")
            try:
                what, rank, step, value = out.get(timeout=0.5)
            except queue.Empty:
                failed = {
                    r: process.exitcode
                    for r, process in enumerate(processes.processes)
                    if process.exitcode not in (None, 0) and not (kill.is_set() and r == VICTIM)
                }
                if failed:  # a rank failed (not the one killed on purpose): stop waiting
                    raise RuntimeError(f"ranks exited with these codes: {failed}") from None
                continue
            if what == "address":
                addresses.append(value)
            elif what == "records":
                records[(rank, step)] = value
            elif what == "trained":
                trained.add(rank)
            elif what == "after":
                after[rank] = (step, value)

    addresses: list[tuple[str, int]] = []
    trained: set[int] = set()
    try:
        take("the serving rank", lambda: addresses)
        client = StreamClient.connect(*addresses[0], timeout=60)
        hello = client.hello.message
        assert isinstance(hello, Hello) and hello.world_size == RANKS
        assert hello.capabilities & Capability.JOB
        meta_frame = client.wait_for(MsgType.MODEL_META, 60)
        meta = meta_frame.message
        assert isinstance(meta, ModelMeta)
        go.set()
        frames: list[Frame] = []
        while not any(
            isinstance(f.message, RankSkew) and f.header.step == STEPS - 1 for f in frames
        ):
            frame = client.next_frame(max(deadline - time.monotonic(), 0.1))
            assert frame is not None, "the job stream stopped before the last merged step"
            frames.append(frame)
        every = {(r, s) for r in range(RANKS) for s in range(STEPS)}
        take("every rank's records", lambda: len(trained) == RANKS and every <= records.keys())

        merged_steps = 0
        for frame in frames:
            message = frame.message
            if not isinstance(message, LayerSummaryBatch):
                continue
            assert frame.header.flags & HeaderFlag.JOB and frame.header.rank == 0
            step = frame.header.step
            per_rank = [records[(r, step)] for r in range(RANKS)]
            for r in per_rank:
                np.testing.assert_array_equal(r["site_id"], message.records["site_id"])
            expected = _merge(per_rank)
            got = message.records
            np.testing.assert_array_equal(got["count"], expected["count"])
            for name in ("mean", "std", "rms", "min", "max", "mean_abs", "frac_above", "hist"):
                np.testing.assert_allclose(
                    got[name], expected[name], rtol=2e-5, atol=1e-6, err_msg=name
                )
            merged_steps += 1
        assert merged_steps == STEPS

        skews = [f for f in frames if isinstance(f.message, RankSkew)]
        assert len(skews) == STEPS and all(f.header.flags & HeaderFlag.JOB for f in skews)
        mlp1 = next(s.site_id for s in meta.sites if s.name == "model.layers.1.mlp")
        for frame in skews:
            skew = frame.message
            assert isinstance(skew, RankSkew) and skew.world_size == RANKS
            row = skew.records[skew.records["site_id"] == mlp1][0]
            assert row["rank"] == SCALED and row["z"] > 5.0
            assert row["statistic"] in (SkewStatistic.RMS, SkewStatistic.MAX_ABS)
            others = skew.records[skew.records["site_id"] != mlp1]
            assert np.nanmax(np.abs(others["z"])) < row["z"]  # the scaled site stands out
        status = [f.message for f in frames if isinstance(f.message, JobStatus)]
        assert status and status[-1].state == JobState.RUNNING
        assert status[-1].ranks_reporting == RANKS

        session = Session()  # the app's models on this one endpoint: the whole job
        session.apply_frames([client.hello, meta_frame, *frames])
        assert session.ranks.ranks == [0] and session.skew.world_size == RANKS
        row = int(session.topology.indices_of(np.array([mlp1]))[0])
        assert session.skew.rank[row] == SCALED and "rank 2" in session.skew.describe(row)
        last = next(f.message for f in reversed(frames) if isinstance(f.message, LayerSummaryBatch))
        merged_rms = last.records[last.records["site_id"] == mlp1]["rms"][0]
        assert session.stats.field("rms")[row] == merged_rms

        kill.set()
        killed = time.monotonic()
        lost = client.wait_for(
            MsgType.JOB_STATUS,
            JOB_TIMEOUT + 30,
            lambda f: f.message.state != JobState.RUNNING,
        )
        assert lost is not None, "no JOB_STATUS told of the lost rank"
        message = lost.message
        assert isinstance(message, JobStatus)
        assert message.state == JobState.RANK_LOST and message.rank == VICTIM
        assert f"rank {VICTIM}" in message.text and message.since_ns > 0
        assert time.monotonic() - killed < JOB_TIMEOUT + 30
        time.sleep(1.0)  # the others train on
        finish.set()
        take("the survivors", lambda: len(after) == RANKS - 1)
        for rank in set(range(RANKS)) - {VICTIM}:
            steps_after, (off, state, slowest) = after[rank]
            assert off and state != JobState.RUNNING  # the probe turned itself off
            assert steps_after > 3  # training went on
            assert slowest < 2.0  # and never waited on the probe's collectives
    finally:
        go.set()
        finish.set()
        if client is not None:
            client.close()
        join_or_kill(processes)
