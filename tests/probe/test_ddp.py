"""Several ranks without a job stream (``job=False``): two DDP processes (gloo, CPU), each with
its probe on its own port, read into one app ``Session`` that tells the ranks apart; and the
port and hint rules. The job stream itself: ``test_job.py``."""

from __future__ import annotations

import os
import queue
import random
import socket
import time
from datetime import timedelta
from typing import Any

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from job_ranks import Flag
from probe_models import batch, llama_like, lm_loss

from synapse_probe.ranks import distributed

pytest.importorskip("synapse_native.client")
from synapse_desktop.models.ranks import MERGED
from synapse_desktop.models.session import Session
from synapse_native.client import StreamClient
from synapse_native.protocol import Frame, Hello, LayerSummaryBatch, MsgType, SummaryFlag

STEPS = 3
WAIT_S = 240.0  # a loaded 2-core machine spawns two torch processes slowly


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _free_port_pair() -> int:
    """A port ``p`` with ``p + 1`` free too (the probes of ranks 0 and 1), below the kernel's
    ephemeral range (from 32768), where gloo's own connections, made while the ranks start,
    cannot take one of them first."""
    rng = random.Random()
    for _ in range(200):
        port = rng.randrange(20000, 32000)
        try:
            with socket.socket() as first, socket.socket() as second:
                first.bind(("127.0.0.1", port))
                second.bind(("127.0.0.1", port + 1))
        except OSError:
            continue
        return port
    raise RuntimeError("no free pair of ports")


def _train(
    rank: int,
    master_port: int,
    base_port: int,
    ready: Any,
    go: Any,
    finish: Any,
) -> None:
    """One DDP rank: train ``STEPS`` steps with the probe attached, between the test's events."""
    import synapse_probe

    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(master_port)
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=2, timeout=timedelta(seconds=WAIT_S))
    try:
        torch.manual_seed(0)
        model = torch.nn.parallel.DistributedDataParallel(llama_like(n_layers=2))
        probe = synapse_probe.attach(model, port=base_port, rate_hz=1000.0, top_k=4, job=False)
        ready.put((rank, probe.address))
        if not go.wait(WAIT_S):
            raise TimeoutError("the test never connected")
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        for step in range(STEPS):
            probe.step(step)
            ids, targets = batch(seed=100 * rank + step)  # each rank its own data
            lm_loss(model, ids, targets).backward()
            optimizer.step()
            optimizer.zero_grad()
        probe.step(STEPS)  # the boundary that sends the last step
        if not finish.wait(WAIT_S):
            raise TimeoutError("the test never finished reading")
        probe.close()
    finally:
        dist.destroy_process_group()


def _read_until(client: StreamClient, into: list[Frame], done: Any, deadline: float) -> None:
    """Append ``client``'s frames to ``into`` until ``done(frame)``."""
    while True:
        remaining = deadline - time.monotonic()
        frame = client.next_frame(max(remaining, 0.0)) if remaining > 0 else None
        if frame is None:
            raise TimeoutError("the probe stopped sending before the expected frame")
        into.append(frame)
        if done(frame):
            return


def _is_meta(frame: Frame) -> bool:
    return frame.header.msg_type == MsgType.MODEL_META


def _last_summary(frame: Frame) -> bool:
    return isinstance(frame.message, LayerSummaryBatch) and frame.header.step == STEPS - 1


def _activations(frames: list[Frame]) -> np.ndarray:
    """The activation records of the last step's summary batch."""
    message = next(f.message for f in reversed(frames) if _last_summary(f))
    assert isinstance(message, LayerSummaryBatch)
    records = message.records
    return records[(records["flags"] & int(SummaryFlag.GRADIENT)) == 0]


@pytest.mark.timeout(600)
def test_two_ddp_ranks_stream_to_one_session_that_tells_them_apart(capfd) -> None:  # type: ignore[no-untyped-def]
    ctx = mp.get_context("spawn")
    ready, go, finish = ctx.Queue(), Flag(ctx), Flag(ctx)
    base = _free_port_pair()
    processes = mp.start_processes(
        _train,
        args=(_free_port(), base, ready, go, finish),
        nprocs=2,
        join=False,
        start_method="spawn",
    )
    clients: list[StreamClient] = []
    try:
        deadline = time.monotonic() + WAIT_S
        addresses: dict[int, tuple[str, int]] = {}
        while len(addresses) < 2:
            processes.join(timeout=0)  # raises at once if a rank failed
            if time.monotonic() > deadline:
                raise TimeoutError("the ranks did not start")
            try:
                rank, address = ready.get(timeout=1.0)
            except queue.Empty:
                continue
            addresses[rank] = address
        assert [addresses[r][1] for r in (0, 1)] == [base, base + 1]  # port + local rank

        frames: list[list[Frame]] = [[], []]
        for rank in (0, 1):
            clients.append(StreamClient.connect("127.0.0.1", addresses[rank][1], timeout=60))
            frames[rank].append(clients[rank].hello)
            _read_until(clients[rank], frames[rank], _is_meta, deadline)
        go.set()
        for rank in (0, 1):
            _read_until(clients[rank], frames[rank], _last_summary, deadline)
        finish.set()

        for rank in (0, 1):  # every frame of a connection carries its rank
            hello = frames[rank][0].message
            assert isinstance(hello, Hello) and (hello.rank, hello.world_size) == (rank, 2)
            assert {f.header.rank for f in frames[rank]} == {rank}

        session = Session()
        session.apply_frames(frames[0])
        session.apply_frames(frames[1])
        assert session.ranks.ranks == [0, 1]
        by_rank = session.ranks.by_rank("rms")
        assert np.isfinite(by_rank).all() and not np.allclose(by_rank[0], by_rank[1])
        last = [_activations(frames[rank]) for rank in (0, 1)]
        indices = session.topology.indices_of(last[0]["site_id"].astype(np.int64))
        np.testing.assert_array_equal(last[0]["site_id"], last[1]["site_id"])
        assert session.ranks.choice == MERGED
        assert (session.stats.steps[indices] == STEPS - 1).all()
        expected = (last[0]["rms"].astype(np.float64) + last[1]["rms"]) / 2
        np.testing.assert_allclose(session.stats.field("rms")[indices], expected, rtol=1e-6)
        session.choose_rank(1)
        np.testing.assert_array_equal(session.stats.field("rms")[indices], last[1]["rms"])
    finally:
        go.set()
        finish.set()
        for client in clients:
            client.close()
        end = time.monotonic() + WAIT_S
        while not processes.join(timeout=1.0) and time.monotonic() < end:
            pass
    hint = f"synapse app --connect 127.0.0.1:{base}-{base + 1}"
    assert capfd.readouterr().err.count(hint) == 1  # rank 0 tells how to reach every rank


def test_ports_follow_the_local_rank_or_a_list() -> None:
    torchrun = {"LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "4"}
    assert distributed.local_rank_and_size(5, 8, torchrun) == (1, 4)  # second node
    assert distributed.local_rank_and_size(3, 4, {}) == (3, 4)  # one node, no torchrun
    assert distributed.local_rank_and_size(0, 1, torchrun) == (0, 1)  # not distributed
    assert distributed.rank_port(9000, 3) == 9003
    assert distributed.rank_port(0, 3) == 0  # any free port, every rank
    assert distributed.rank_port([9000, 9100], 1) == 9100
    with pytest.raises(ValueError, match="2 ports"):
        distributed.rank_port([9000, 9100], 2)
    command = distributed.connect_command("127.0.0.1", [9000, 9001, 9002, 9003])
    assert command == "synapse app --connect 127.0.0.1:9000-9003"
    spread = distributed.connect_command("::1", [9000, 9100])
    assert spread == "synapse app --connect [::1]:9000,[::1]:9100"
    assert distributed.node_ports(0, 4) is None
