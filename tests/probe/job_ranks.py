"""What the rank tests' processes share: a flag the test raises, a slow training loop, and
stopping the ranks."""

from __future__ import annotations

import time
from typing import Any

import torch
from probe_models import batch, lm_loss

STEP_PAUSE_S = 0.1  # a step rate several ranks keep up with on a loaded two-core machine
POLL_S = 0.01


class Flag:
    """A flag the test sets and its rank processes wait on: one shared byte, polled.

    Not a ``multiprocessing.Event``: its ``set`` waits until every waiter has woken, so a rank
    that died while waiting (killed when the other rank failed) hangs the test in ``set``."""

    def __init__(self, ctx: Any) -> None:
        self._value = ctx.RawValue("b", 0)

    def set(self) -> None:
        self._value.value = 1

    def is_set(self) -> bool:
        return bool(self._value.value)

    def wait(self, timeout: float) -> bool:
        """Whether the flag was set within ``timeout`` seconds."""
        end = time.monotonic() + timeout
        while not self._value.value:
            if time.monotonic() >= end:
                return False
            time.sleep(POLL_S)
        return True


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


__all__ = ["Flag", "join_or_kill", "train_until"]
