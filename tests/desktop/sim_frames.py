"""Whole wire frames of a simulated run, made without a socket (for replay tests)."""

from __future__ import annotations

from collections.abc import Iterator

from synapse_native.protocol import (
    HeaderFlag,
    Hello,
    LayerSummaryBatch,
    Role,
    TrainingMetrics,
    encode,
)
from synapse_serve.sim.simulator import SimOptions, Simulator, model_meta

from .frames import summaries


def sim_steps(
    steps: int,
    *,
    layers: int = 4,
    seed: int = 0,
    threshold: float | None = None,
    t0_ns: int = 10**18,
) -> Iterator[list[bytes]]:
    """Per step, the frames a simulated trainer sends (HELLO and MODEL_META before step 0),
    numbered as one stream, 100 ms apart."""
    sim = Simulator(SimOptions(port=0, layers=layers, seed=seed, threshold=threshold))
    seq = 0

    def wire(message, step: int, flags: int = 0, numbered: bool = True) -> bytes:  # type: ignore[no-untyped-def]
        nonlocal seq
        if numbered:
            seq += 1
        return encode(
            message,
            seq=seq if numbered else 0,
            step=step,
            flags=flags,
            timestamp_ns=t0_ns + step * 100_000_000 + seq,
        )

    head = [
        wire(Hello(Role.TRAINER, "synapse-sim", 0), 0, numbered=False),
        wire(model_meta(sim.model), 0, numbered=False),
    ]
    for step in range(steps):
        sim.model.advance(step)
        messages = sim.site_messages(step) + sim.attention.messages(step, sim.model.spike)
        frames = [wire(TrainingMetrics(sim.model.metrics(step)), step)]
        last = len(messages) - 1
        frames += [
            wire(m, step, int(HeaderFlag.END_OF_STEP) if i == last else 0)
            for i, m in enumerate(messages)
        ]
        yield (head + frames) if step == 0 else frames


def nan_summaries(sites: int, bad: bool) -> LayerSummaryBatch:
    """Summaries of ``sites`` sites; with ``bad``, the first two have NaN values."""
    batch = summaries(list(range(sites)), 1.0)
    if bad:
        batch.records["nan_count"][:2] = 3
    return batch
