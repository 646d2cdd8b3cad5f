"""``ProbeOptions``: every option of ``attach``, in one place (docs/PROBE.md explains each).

``attach(model, host, port, **options)`` and ``Probe(model, options)`` both take these: the
keywords of ``attach`` are this dataclass's fields, checked here before anything is hooked.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from synapse_native.protocol import MAX_SAMPLED_TOKENS, ThresholdMode
from synapse_serve.control import DEFAULT_BUDGET, DEFAULT_THRESHOLDS, budget_errors, parse_mode

from .capture import DEFAULT_DIR as DEFAULT_CAPTURE_DIR
from .capture import DEFAULT_MAX_MB as DEFAULT_CAPTURE_MB
from .ranks.distributed import Ports
from .ranks.job import DEFAULT_TIMEOUT as DEFAULT_JOB_TIMEOUT

if TYPE_CHECKING:
    import torch
    from torch import nn

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 9000
DEFAULT_THRESHOLD_MODE = "sigma"  # each site by its own scale (docs/PROTOCOL.md 5.5)
DEFAULT_THRESHOLD = DEFAULT_THRESHOLDS[ThresholdMode.SIGMA]
DEFAULT_TOP_K = 512
DEFAULT_RATE_HZ = 10.0
DEFAULT_PATTERN_HZ = 1.0
DEFAULT_SAMPLE_TOKENS = 128
DEFAULT_BACKLOG_MB = 64.0  # MiB of the latest frames replayed to a viewer that connects


@dataclass(frozen=True)
class ProbeOptions:
    """How a probe listens, what it measures, and how often (docs/PROBE.md, ``attach``)."""

    # Where it listens (one port per local rank, or the job's one endpoint).
    host: str = DEFAULT_HOST
    port: Ports = DEFAULT_PORT
    token: str | None = None
    port_fallback: bool = False
    # What it hooks and measures.
    per_block: str = "attn+mlp+residual"
    layers: str | nn.ModuleList | Sequence[nn.Module] | None = None
    rate_hz: float = DEFAULT_RATE_HZ
    threshold: float | None = None  # None: the mode's default
    threshold_mode: str | int = DEFAULT_THRESHOLD_MODE
    top_k: int = DEFAULT_TOP_K
    grads: bool = False
    sample_fraction: float = 1.0
    budget: float | None = DEFAULT_BUDGET  # None: no governor, every step at rate_hz
    name: str | None = None  # None: the model's class name
    # The lenses.
    attention: bool = True
    pattern_hz: float = DEFAULT_PATTERN_HZ
    sample_tokens: int = DEFAULT_SAMPLE_TOKENS
    tokenizer: Any = None
    routing: bool = True
    optimizer: torch.optim.Optimizer | None = None
    # What it keeps: recordings, the backlog, captures.
    record: str | os.PathLike[str] | None = None
    record_max_mb: float | None = None
    record_sparse_hz: float | None = None
    record_pattern_hz: float | None = None
    backlog_mb: float = DEFAULT_BACKLOG_MB
    capture: bool = False
    capture_dir: str | os.PathLike[str] = DEFAULT_CAPTURE_DIR
    capture_max_mb: float = DEFAULT_CAPTURE_MB
    # Several ranks.
    job: bool | None = None  # None: a job stream under torch.distributed with several ranks
    serve_rank: int = 0
    job_timeout: float = DEFAULT_JOB_TIMEOUT

    def __post_init__(self) -> None:
        parse_mode(self.threshold_mode)  # raises on an unknown mode
        if self.backlog_mb < 0:
            raise ValueError(f"backlog_mb must be >= 0, got {self.backlog_mb}")
        if not 0 < self.sample_fraction <= 1:
            raise ValueError(f"sample_fraction must be in (0, 1], got {self.sample_fraction!r}")
        if not 1 <= self.sample_tokens <= MAX_SAMPLED_TOKENS:
            raise ValueError(
                f"sample_tokens must be in 1..{MAX_SAMPLED_TOKENS}, got {self.sample_tokens}"
            )
        if not self.pattern_hz >= 0:
            raise ValueError(f"pattern_hz must be >= 0, got {self.pattern_hz}")
        if self.budget is not None and budget_errors(self.budget):
            raise ValueError(budget_errors(self.budget)[0])

    @property
    def mode(self) -> ThresholdMode:
        return parse_mode(self.threshold_mode)

    @property
    def start_threshold(self) -> float:
        """The threshold in force when the probe starts."""
        return DEFAULT_THRESHOLDS[self.mode] if self.threshold is None else self.threshold

    def with_overrides(self, **overrides: Any) -> ProbeOptions:
        """A copy with ``overrides`` (``attach``'s keywords); a TypeError names an unknown one."""
        known = {field.name for field in dataclasses.fields(self)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise TypeError(
                f"unknown probe option {unknown[0]!r}; the options are ProbeOptions' fields "
                f"(docs/PROBE.md): {', '.join(sorted(known))}"
            )
        return dataclasses.replace(self, **overrides) if overrides else self
