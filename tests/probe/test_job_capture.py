"""A capture through the job stream: two gloo CPU ranks train, rank 0 serves, a viewer asks.

The viewer sends CAPTURE_REQUEST to the job's one endpoint; the request rides in the job's
reductions, so both ranks capture the same sites at the same step, each writing its own file
(the rank in its name), and the serving rank answers CAPTURE_DONE WRITTEN with its own file.
"""

from __future__ import annotations

import json
import os
import queue
import socket
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from job_ranks import join_or_kill, train_until
from probe_models import llama_like

pytest.importorskip("synapse_native.client")
from safetensors import safe_open

from synapse_native.client import StreamClient
from synapse_native.protocol import (
    Capability,
    CaptureDone,
    CaptureRequest,
    CaptureStatus,
    Hello,
    ModelMeta,
    MsgType,
)
from synapse_probe.capture import METADATA_KEY

RANKS = 2
JOB_TIMEOUT = 30.0  # generous: the machine is shared; nothing here is meant to time out
WAIT_S = 120.0
NAMES = ["model.layers.0.mlp", "model.layers.1.self_attn"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _worker(
    rank: int, master: int, port: int, directory: str, out: Any, go: Any, finish: Any
) -> None:
    import synapse_probe

    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(master)
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=RANKS, timeout=timedelta(seconds=60))
    torch.manual_seed(rank)
    model = llama_like(n_layers=2)
    probe = synapse_probe.attach(
        model,
        port=port,
        job=True,
        rate_hz=1000.0,
        attention=False,
        capture=True,
        capture_dir=directory,
        job_timeout=JOB_TIMEOUT,
    )
    if rank == 0:
        out.put(("address", rank, probe.address))
    if not go.wait(WAIT_S):
        raise TimeoutError("the test never connected")
    dist.barrier()  # both ranks start training together
    train_until(probe, model, rank, finish)
    job = probe.job
    assert job is not None
    probe.close()
    out.put(("after", rank, (job.off, int(job.state))))
    out.close()
    out.join_thread()
    os._exit(0)


@pytest.mark.timeout(120)
def test_a_capture_asked_of_the_job_is_taken_on_every_rank_at_the_same_step(
    tmp_path: Path,
) -> None:
    directory = tmp_path / "caps"
    ctx = mp.get_context("spawn")
    out, go, finish = ctx.Queue(), ctx.Event(), ctx.Event()
    processes = mp.start_processes(
        _worker,
        args=(_free_port(), _free_port(), str(directory), out, go, finish),
        nprocs=RANKS,
        join=False,
        start_method="spawn",
    )
    got: dict[str, dict[int, Any]] = {"address": {}, "after": {}}
    deadline = time.monotonic() + WAIT_S
    client: StreamClient | None = None

    def drain(what: str, count: int) -> None:
        while len(got[what]) < count:
            try:
                kind, rank, value = out.get(timeout=0.1)
            except queue.Empty:
                failed = {r: p.exitcode for r, p in enumerate(processes.processes) if p.exitcode}
                if failed:
                    raise RuntimeError(f"ranks exited with these codes: {failed}") from None
                assert time.monotonic() < deadline, f"no {what} from the ranks"
                continue
            got[kind][rank] = value

    try:
        drain("address", 1)
        client = StreamClient.connect(*got["address"][0], timeout=60)
        hello = client.hello.message
        assert isinstance(hello, Hello) and hello.world_size == RANKS
        assert hello.capabilities & Capability.CAPTURE and hello.capabilities & Capability.JOB
        meta = client.wait_for(MsgType.MODEL_META, 60).message
        assert isinstance(meta, ModelMeta)
        by_name = {site.name: site.site_id for site in meta.sites}
        go.set()
        client.send(CaptureRequest(23, tuple(by_name[n] for n in NAMES)))
        client.send(CaptureRequest(24, (by_name[NAMES[0]],)))  # one in flight: BUSY at once
        busy = client.wait_for(
            MsgType.CAPTURE_DONE, 60, lambda f: f.message.request_id == 24
        ).message
        assert isinstance(busy, CaptureDone) and busy.status == CaptureStatus.BUSY
        frame = client.wait_for(MsgType.CAPTURE_DONE, 60, lambda f: f.message.request_id == 23)
        done = frame.message
        assert isinstance(done, CaptureDone)
        assert done.status == CaptureStatus.WRITTEN, done
        assert done.sites == len(NAMES) and f"{RANKS} ranks" in done.text
        # The other rank may run a few steps behind: train on until it wrote its file too.
        while len(list(directory.glob("*.safetensors"))) < RANKS:
            assert time.monotonic() < deadline, "rank 1 wrote no file"
            time.sleep(0.05)
        finish.set()
        drain("after", RANKS)
        assert all(not off for off, _ in got["after"].values())
    finally:
        go.set()
        finish.set()
        if client is not None:
            client.close()
        join_or_kill(processes)

    path = Path(done.path)
    assert path.parent == directory.resolve() and path.name.endswith("-rank0.safetensors")
    files = sorted(directory.glob("*.safetensors"))
    assert [f.name.rsplit("-", 1)[1] for f in files] == ["rank0.safetensors", "rank1.safetensors"]
    metas = []
    for file in files:
        with safe_open(file, "pt") as f:
            metas.append(json.loads(f.metadata()[METADATA_KEY]))
            assert set(f.keys()) == set(NAMES)
    assert [m["rank"] for m in metas] == [0, 1] and {m["ranks"] for m in metas} == {RANKS}
    assert {m["step"] for m in metas} == {done.step}
    assert {m["request_id"] for m in metas} == {23}
    assert [[s["name"] for s in m["sites"]] for m in metas] == [NAMES, NAMES]
