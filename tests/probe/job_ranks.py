"""What the job tests' rank processes share: a slow training loop, and stopping the ranks."""

from __future__ import annotations

import time
from typing import Any

import torch
from probe_models import batch, lm_loss

STEP_PAUSE_S = 0.1  # a step rate several ranks keep up with on a loaded two-core machine


def train_until(probe: Any, model: torch.nn.Module, rank: int, finish: Any) -> int:
    """Train ``model`` one step every ``STEP_PAUSE_S`` until ``finish`` is set; the steps run."""
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    step = 0
    while not finish.is_set():
        probe.step(step)
        ids, targets = batch(seed=100 * rank + step)
        lm_loss(model, ids, targets).backward()
        optimizer.step()
        optimizer.zero_grad()
        step += 1
        time.sleep(STEP_PAUSE_S)
    return step


def join_or_kill(processes: Any, timeout: float = 60.0) -> None:
    """Wait for the spawned ranks to exit, all within ``timeout``; kill those that do not."""
    end = time.monotonic() + timeout
    for process in processes.processes:
        process.join(max(end - time.monotonic(), 0.1))
        if process.is_alive():
            process.kill()


__all__ = ["join_or_kill", "train_until"]
