"""One rank of a job in full: three gloo CPU ranks train, rank 0 serves, the viewer picks rank 2.

The viewer sends CONTROL FULL_RANK=2 and then gets SPARSE_ACTIVATIONS frames with rank 2 in the
header and the JOB flag, equal to what rank 2 measured (each rank tees its step frames), and
none from rank 1; JOB_STATUS names the rank relayed. After FULL_RANK=none the relay stops.
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
from job_ranks import Flag, join_or_kill, train_until
from probe_models import llama_like

pytest.importorskip("synapse_native.client")
from synapse_native.client import StreamClient
from synapse_native.protocol import (
    NO_FULL_RANK,
    NO_RANK,
    Capability,
    Control,
    ControlAck,
    Frame,
    HeaderFlag,
    Hello,
    JobState,
    JobStatus,
    MsgType,
    SparseActivations,
)

RANKS = 3
RELAYED = 2
JOB_TIMEOUT = 30.0  # generous: the machine is shared; nothing here is meant to time out
WAIT_S = 300.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _worker(rank: int, master: int, port: int, out: Any, go: Any, finish: Any) -> None:
    import synapse_probe

    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(master)
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=RANKS, timeout=timedelta(seconds=60))
    torch.manual_seed(rank)  # each rank its own weights: their sparse frames differ
    model = llama_like(n_layers=2)
    probe = synapse_probe.attach(
        model,
        port=port,
        rate_hz=1000.0,
        top_k=4,
        threshold_mode="top",
        threshold=0.25,  # every site lights neurons: frames with content to compare
        attention=False,
        job_timeout=JOB_TIMEOUT,
    )
    job = probe.job
    assert job is not None
    contribute = job.broadcast_step

    def tee(messages: Any, *, step: int) -> int:  # what this rank measured, in full
        sparse = [
            (m.site_id, m.indices.copy(), m.values.copy())
            for m in messages
            if isinstance(m, SparseActivations)
        ]
        out.put(("sparse", rank, step, sparse))
        return contribute(messages, step=step)

    job.broadcast_step = tee  # type: ignore[method-assign]
    if rank == 0:
        out.put(("address", 0, 0, probe.address))
    if not go.wait(WAIT_S):
        raise TimeoutError("the test never connected")
    step = train_until(probe, model, rank, finish)
    out.put(("after", rank, step, (job.off, job.state)))
    probe.close()
    out.close()
    out.join_thread()  # the queue's feeder thread: flushed before _exit, not lost
    os._exit(0)


@pytest.mark.timeout(600)
def test_the_chosen_rank_is_relayed_in_full_and_only_while_chosen() -> None:
    ctx = mp.get_context("spawn")
    out, go, finish = ctx.Queue(), Flag(ctx), Flag(ctx)
    processes = mp.start_processes(
        _worker,
        args=(_free_port(), _free_port(), out, go, finish),
        nprocs=RANKS,
        join=False,
        start_method="spawn",
    )
    measured: dict[tuple[int, int], list[Any]] = {}
    addresses: list[tuple[str, int]] = []
    after: dict[int, Any] = {}
    deadline = time.monotonic() + WAIT_S
    client: StreamClient | None = None

    def drain(until: Any = lambda: False) -> None:
        while True:
            try:
                what, rank, step, value = out.get(timeout=0.1)
            except queue.Empty:
                failed = {r: p.exitcode for r, p in enumerate(processes.processes) if p.exitcode}
                if failed:
                    raise RuntimeError(f"ranks exited with these codes: {failed}") from None
                if until() or time.monotonic() > deadline:
                    return
                continue
            if what == "address":
                addresses.append(value)
            elif what == "sparse":
                measured[(rank, step)] = value
            elif what == "after":
                after[rank] = value

    def read_until(done: Any) -> list[Frame]:
        frames: list[Frame] = []
        while not done(frames):
            frame = client.next_frame(max(deadline - time.monotonic(), 0.1))  # type: ignore[union-attr]
            assert frame is not None, "the job stream stopped"
            frames.append(frame)
        return frames

    def statuses(frames: list[Frame]) -> list[JobStatus]:
        return [f.message for f in frames if isinstance(f.message, JobStatus)]

    def answer(request_id: int) -> ControlAck:
        ack = client.wait_for(  # type: ignore[union-attr]
            MsgType.CONTROL_ACK, 60, lambda f: f.message.request_id == request_id
        )
        assert ack is not None and isinstance(ack.message, ControlAck)
        return ack.message

    try:
        drain(lambda: bool(addresses))
        client = StreamClient.connect(*addresses[0], timeout=60)
        hello = client.hello.message
        assert isinstance(hello, Hello) and hello.world_size == RANKS
        assert hello.capabilities & Capability.JOB and hello.capabilities & Capability.RANK_RELAY
        go.set()
        before = read_until(lambda fs: len(statuses(fs)) >= 3)
        assert all(s.full_rank == NO_RANK for s in statuses(before))
        assert {f.header.rank for f in before} == {0}  # the serving rank's frames only

        client.send(Control(1, full_rank=RANKS))  # not a rank of this job
        rejected = answer(1)
        assert not rejected.applied and f"full_rank {RANKS}" in rejected.error

        client.send(Control(2, full_rank=RELAYED))
        assert answer(2).applied
        relayed_steps: set[int] = set()

        def relayed_for_a_while(frames: list[Frame]) -> bool:
            relayed_steps.update(f.header.step for f in frames[-1:] if f.header.rank == RELAYED)
            return len(relayed_steps) >= 3 and isinstance(frames[-1].message, JobStatus)

        during = read_until(relayed_for_a_while)
        assert {f.header.rank for f in during} <= {0, RELAYED}  # nothing from rank 1
        on_from = next(s.last_step for s in statuses(during) if s.full_rank == RELAYED)
        status_of = {s.last_step: s.full_rank for s in statuses(during)}
        got: dict[int, list[Any]] = {}
        for frame in during:
            if frame.header.rank != RELAYED:
                continue
            message = frame.message
            assert isinstance(message, SparseActivations)
            assert frame.header.flags & HeaderFlag.JOB
            assert status_of[frame.header.step] == RELAYED  # JOB_STATUS said so first
            got.setdefault(frame.header.step, []).append(message)
        drain(lambda: all((r, s) in measured for s in got for r in (0, RELAYED)))
        for step, messages in got.items():
            expected = measured[(RELAYED, step)]
            assert len(messages) == len(expected) > 0
            for message, (site, indices, values) in zip(messages, expected, strict=True):
                assert message.site_id == site
                np.testing.assert_array_equal(message.indices, indices)
                np.testing.assert_array_equal(message.values, values)
            assert all(len(m.values) for m in messages)
            assert any(  # rank 0 measured something else: the relay is rank 2's own
                not np.array_equal(m.values, v)
                for m, (_, _, v) in zip(messages, measured[(0, step)], strict=False)
            )
        assert min(got) >= on_from  # none before JOB_STATUS named rank 2

        client.send(Control(3, full_rank=NO_FULL_RANK))
        assert answer(3).applied
        read_until(lambda fs: any(s.full_rank == NO_RANK for s in statuses(fs)))
        stopped = read_until(lambda fs: len(statuses(fs)) >= 4)
        assert all(s.full_rank == NO_RANK for s in statuses(stopped))
        assert {f.header.rank for f in stopped} == {0}  # the relay stopped
        assert statuses(stopped)[-1].state == JobState.RUNNING

        finish.set()
        drain(lambda: len(after) == RANKS)
        assert all(not off and state == JobState.RUNNING for off, state in after.values())
    finally:
        go.set()
        finish.set()
        if client is not None:
            client.close()
        join_or_kill(processes)
