"""Fixtures of the probe tests: a fake server."""

from __future__ import annotations

import os

import pytest
import torch

if not torch.cuda.is_available():
    # Without a GPU, Triton kernels run in Triton's interpreter on CPU tensors
    # (test_cuda_kernel.py); it is chosen when triton is first imported, so set it here.
    os.environ.setdefault("TRITON_INTERPRET", "1")
from probe_fakes import FakeServer


@pytest.fixture
def server() -> FakeServer:
    return FakeServer()
