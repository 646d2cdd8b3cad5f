"""The job stream's per-rank cost: time and bytes of a measured step's reductions (gloo, CPU).

For 2 and 4 ranks (one process each), every rank's ``Job`` reduces the records of an
80-layer model (240 sites) for ``--steps`` measured steps, fed as the probe's encoder feeds it.
Printed per rank and measured step: the job thread's time for the five collectives (median,
p95), the bytes it puts into them, and, as the baseline measured in the same run, one plain
``all_reduce`` of the same number of bytes on the same kind of group.

  .venv/bin/python bench/bench_job_collectives.py [--steps 200] [--layers 80]
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import time
from datetime import timedelta
from typing import Any

import numpy as np


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _meta(layers: int) -> Any:
    from synapse_native.protocol import ModelMeta, SiteInfo, SiteKind

    sites = [
        SiteInfo(3 * layer + k, layer, kind, f"layers.{layer}.{kind.name}", 4096, 64, 64)
        for layer in range(layers)
        for k, kind in enumerate((SiteKind.ATTN, SiteKind.MLP, SiteKind.RESIDUAL))
    ]
    return ModelMeta("bench", layers, tuple(sites))


def _rank(rank: int, world: int, port: int, steps: int, layers: int, out: Any) -> None:
    import torch
    import torch.distributed as dist

    from synapse_native.protocol import ControlState, LayerSummaryBatch, summary_records
    from synapse_probe.ranks.job import Job

    os.environ["MASTER_ADDR"], os.environ["MASTER_PORT"] = "127.0.0.1", str(port)
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world, timeout=timedelta(seconds=120))
    meta = _meta(layers)
    control = ControlState(1.0, float("inf"), 14, False, 64)
    job = Job(meta=meta, control=control, grads=False, timeout=60.0)
    rng = np.random.default_rng(rank)
    records = summary_records(len(meta.sites))
    records["site_id"] = np.arange(len(meta.sites))
    records["count"] = 1 << 20
    for name in ("mean", "std", "rms", "max", "mean_abs"):
        records[name] = rng.uniform(0.5, 2.0, len(records))
    records["min"] = -records["max"]
    records["hist"] = 1.0 / 64
    rounds: list[float] = []
    for step in range(steps):
        if job.due(step):
            before, ns = job.rounds, job.round_ns
            job.broadcast_step([LayerSummaryBatch(records)], step=step)
            while job.rounds == before and not job.off:
                time.sleep(0.0002)
            rounds.append((job.round_ns - ns) / 1e6)
    rows = job.rows.count
    sent = 8 * ((1 + 9 * rows) + (10 + 2 * rows) + 76 * rows + rows + rows)
    # Baseline: one all_reduce of as many bytes, on a gloo group of its own.
    group = dist.new_group(backend="gloo")
    tensor = torch.zeros(sent // 8, dtype=torch.float64)
    plain: list[float] = []
    for _ in range(len(rounds)):
        start = time.perf_counter()
        dist.all_reduce(tensor, group=group)
        plain.append((time.perf_counter() - start) * 1e3)
    job.close()
    out.put((rank, rounds, plain, sent, rows))
    dist.barrier()
    dist.destroy_process_group()


def main() -> int:
    import torch.multiprocessing as mp

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--layers", type=int, default=80)
    args = parser.parse_args()
    ctx = mp.get_context("spawn")
    for world in (2, 4):
        out = ctx.Queue()
        procs = mp.start_processes(
            _rank,
            args=(world, _free_port(), args.steps, args.layers, out),
            nprocs=world,
            join=False,
            start_method="spawn",
        )
        results = [out.get(timeout=600) for _ in range(world)]
        procs.join()
        rounds = [r for result in results for r in result[1][5:]]  # after the warm-up
        plain = [p for result in results for p in result[2][5:]]
        sent, rows = results[0][3], results[0][4]
        job_p50, plain_p50 = statistics.median(rounds), statistics.median(plain)
        print(
            f"{world} gloo ranks, {args.layers} layers x 3 sites ({rows} rows): "
            f"{len(rounds) // world} measured steps per rank"
        )
        print(
            f"  job reductions per measured step: median {job_p50:.2f} ms, "
            f"p95 {np.percentile(rounds, 95):.2f} ms; {sent / 1024:.0f} KiB into the "
            f"collectives per rank (ring all-reduce sends at most twice that, any rank count)"
        )
        print(
            f"  baseline, one all_reduce of {sent / 1024:.0f} KiB: median {plain_p50:.2f} ms; "
            f"RATIO job / baseline: {job_p50 / plain_p50:.2f}x"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
