"""Demo test fixtures: one torch thread (two threads on two busy shared cores spin and crawl),
the same for trainer subprocesses."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

# Trainer subprocesses inherit this environment.
TRAINER_ENV = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")


@pytest.fixture(autouse=True)
def _one_torch_thread() -> Iterator[None]:
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
