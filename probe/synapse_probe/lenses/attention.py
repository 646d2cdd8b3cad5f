"""The attention lens: per-head statistics every measured step, patterns and residual norms at a
lower rate, all recomputed from batch row 0's first ``T`` tokens.

The training forward keeps its fused attention kernel. On a measured step, forward hooks on each
attention module's query and key projections copy row 0's first ``T`` rows into preallocated
device buffers (in the projection's dtype), and a hook on the attention module keeps what its
rotary embedding needs (the ``position_embeddings`` it was called with). At the end of the step
the lens applies each module's own rotary embedding and scale (``attention_adapters``; one call
for all layers that share them), recomputes causal attention in float32 for every layer at
once, in chunks of layers (``attention_math``), writes per-head entropy and largest logit into
a ``[2, L, H]`` buffer and, on pattern steps, the weights of up to ``MAX_ATTENTION_PAIRS``
(layer, head) pairs into a float16 buffer, then starts one non-blocking copy of each to pinned
host memory. Pattern steps also capture the token ids (a pre-hook on the model) and the
residual norms (``residual``). Nothing on the training thread waits for a device; token
strings are made on the encoder thread.

A hook counts once per step: activation checkpointing's re-run in backward finds its layer done.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.hooks import RemovableHandle

from synapse_native.protocol import (
    MAX_ATTENTION_PAIRS,
    MAX_HEADS,
    AttentionPattern,
    HeadStats,
    Message,
    ResidualTokens,
)

from ..discovery import find_submodule
from ..sampling import Sampler
from .attention_adapters import QKAccess, Split, find_access
from .attention_math import blocked_keys, head_attention, layers_per_chunk
from .attention_tokens import TokenNamer
from .lens import HostMirror, MirrorPool, outside_graphs
from .residual import ResidualNorms

log = logging.getLogger(__name__)

MIRRORS = 3  # captures waiting for or inside the encoder, at most (as the snapshot pool)


@dataclass(frozen=True)
class AttentionLayer:
    """A block whose attention the lens can read."""

    block: int  # the block's index: the layer id on the wire
    module: nn.Module
    access: QKAccess


class _DeviceBuffers:
    """The lens's device memory for one (device, T, dtype): allocated once per shape.

    Queries and keys are kept as projected, in the projection's dtype (the rotation then runs
    in that dtype, as in the model); the float32 work happens a chunk of layers at a time.
    """

    def __init__(
        self,
        layers: Sequence[AttentionLayer],
        tokens: int,
        pairs: int,
        device: torch.device,
        dtype: torch.dtype,
    ) -> None:
        heads, kv_heads, dim = layers[0].access.layout
        n = len(layers)
        self.device, self.tokens, self.dtype = device, tokens, dtype
        self.queries = torch.zeros(n, tokens, heads, dim, dtype=dtype, device=device)
        self.keys = torch.zeros(n, tokens, kv_heads, dim, dtype=dtype, device=device)
        self.stats = torch.zeros(2, n, heads, device=device)  # entropy, max logit
        self.weights = torch.zeros(pairs, tokens, tokens, dtype=torch.float16, device=device)
        self.blocked = blocked_keys(tokens, [layer.access.window for layer in layers], device)

    def matches(self, device: torch.device, tokens: int, dtype: torch.dtype) -> bool:
        return (self.device, self.tokens, self.dtype) == (device, tokens, dtype)

    def blocked_rows(self, start: int, stop: int) -> torch.Tensor:
        return self.blocked if self.blocked.shape[0] == 1 else self.blocked[start:stop]


class AttentionLens:
    """Hooks the attention of ``layers`` (and every block, for residual norms); ``sample_tokens``
    is within 1..MAX_SAMPLED_TOKENS (the probe checks it before building any lens)."""

    def __init__(
        self,
        root: nn.Module,
        blocks: Sequence[nn.Module],
        layers: Sequence[AttentionLayer],
        *,
        pattern_hz: float,
        sample_tokens: int,
        tokenizer: Any = None,
        on_time: Callable[[int], None] = lambda ns: None,
    ) -> None:
        if not layers:
            raise ValueError("AttentionLens needs at least one attention layer")
        self.layers = list(layers)
        self.sample_tokens = sample_tokens
        self.namer = TokenNamer(tokenizer)
        self.skipped = 0  # measured steps not sent: every host mirror was still in use
        heads = self.layers[0].access.heads
        self.heads_sent = min(heads, MAX_ATTENTION_PAIRS)  # heads per layer in a pattern frame
        self.layers_sent = min(len(self.layers), max(1, MAX_ATTENTION_PAIRS // heads))
        self._on_time = on_time
        self._pattern_sampler = Sampler(pattern_hz)
        self._pool = MirrorPool(MIRRORS)
        self._buffers: _DeviceBuffers | None = None
        self._ids: torch.Tensor | None = None
        self._cursor = 0  # the lens row the next pattern frame starts from
        self._warned: set[str] = set()
        self.residual = ResidualNorms(blocks, sample_tokens, on_time)
        self._measured = False
        self._pattern = False
        self._got_q: list[bool] = []
        self._got_k: list[bool] = []
        self._done: list[bool] = []  # rows captured and rotated this step
        self._tokens = 0  # T of this step (0 until a projection ran)
        self._id_count = 0  # token ids captured this step
        self._reset_marks()
        self._handles: list[RemovableHandle] = []
        for row, layer in enumerate(self.layers):
            for module, split in layer.access.sources:
                hook = outside_graphs(self._projection_hook(row, split))
                self._handles.append(module.register_forward_hook(hook))
            hook = outside_graphs(self._attention_hook(row))
            self._handles.append(layer.module.register_forward_hook(hook, with_kwargs=True))
        ids_hook = outside_graphs(self._on_model_input)
        self._handles.append(root.register_forward_pre_hook(ids_hook, with_kwargs=True))

    @classmethod
    def for_blocks(
        cls,
        root: nn.Module,
        blocks: Sequence[tuple[str, nn.Module]],
        *,
        pattern_hz: float,
        sample_tokens: int,
        tokenizer: Any = None,
        on_time: Callable[[int], None] = lambda ns: None,
    ) -> AttentionLens | None:
        """The lens over the attention modules of ``blocks`` that it can read, or None (logged)
        when there is none."""
        layers = find_attention_layers(root, [block for _, block in blocks])
        if not layers:
            return None
        return cls(
            root,
            [block for _, block in blocks],
            layers,
            pattern_hz=pattern_hz,
            sample_tokens=sample_tokens,
            tokenizer=tokenizer,
            on_time=on_time,
        )

    @property
    def pattern_hz(self) -> float:
        return self._pattern_sampler.rate_hz

    # -- the Lens protocol ----------------------------------------------------------------------

    def begin(self, step: int, measured: bool) -> None:
        """Arm the hooks for ``step`` when it is measured; decide whether it sends patterns."""
        self._measured = measured
        self._pattern = measured and self._pattern_sampler.due()
        self._reset_marks()
        self.residual.begin(self._pattern)

    def finish(self) -> AttentionCapture | None:
        """End a measured step: recompute attention on the device, start the copies off it."""
        if not self._measured:
            return None
        pattern = self._pattern
        self._measured = self._pattern = False
        self.residual.stop()
        rows = [row for row, done in enumerate(self._done) if done]
        buffers = self._buffers
        if not rows or buffers is None:
            return None
        mirror = self._pool.acquire()
        if mirror is None:
            self.skipped += 1
            return None
        selected = self._next_pattern_rows(rows) if pattern else []
        # float32 throughout, even when the step boundary comes inside an autocast region
        with torch.no_grad(), torch.autocast(buffers.device.type, enabled=False):
            self._compute(buffers, rows, selected)
            mirror.copy("stats", buffers.stats)
            if selected:
                mirror.copy("weights", buffers.weights[: len(selected) * self.heads_sent])
            id_count = self._id_count if pattern else 0
            if id_count >= buffers.tokens and self._ids is not None:
                mirror.copy("ids", self._ids[: buffers.tokens])
            else:
                id_count = 0
            residual_rows = [i for i, ran in enumerate(self.residual.ran) if ran] if pattern else []
            if residual_rows and self.residual.norms is not None:
                mirror.copy("norms", self.residual.norms)
            else:
                residual_rows = []
            mirror.mark()
        return AttentionCapture(
            self,
            mirror,
            rows=rows,
            tokens=buffers.tokens,
            selected=selected,
            with_ids=id_count > 0,
            residual_rows=residual_rows,
        )

    def close(self) -> None:
        """Remove every hook."""
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        self.residual.close()

    def release(self, mirror: HostMirror) -> None:
        """Take back the host mirror of an encoded or dropped capture."""
        self._pool.release(mirror)

    # -- hooks ----------------------------------------------------------------------------------

    def _projection_hook(self, row: int, split: Split) -> Callable[..., None]:
        def on_projection(module: nn.Module, args: Any, output: Any) -> None:
            if self._measured and not self._done[row] and isinstance(output, torch.Tensor):
                start = time.perf_counter_ns()
                self._capture_projection(row, split, output)
                self._on_time(time.perf_counter_ns() - start)

        return on_projection

    def _attention_hook(self, row: int) -> Callable[..., None]:
        def on_attention(
            module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any], output: Any
        ) -> None:
            if self._measured and not self._done[row] and self._got_q[row] and self._got_k[row]:
                start = time.perf_counter_ns()
                self._note_positions(row, args, kwargs)
                self._on_time(time.perf_counter_ns() - start)

        return on_attention

    def _on_model_input(
        self, module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> None:
        """Root pre-hook: on a pattern step, batch row 0's first token ids (first forward only)."""
        if not self._pattern or self._id_count:
            return
        ids = _token_ids(args, kwargs)
        if ids is None:
            return
        row = ids[0] if ids.dim() >= 2 else ids
        count = min(row.shape[0], self.sample_tokens)
        if count == 0:
            return
        start = time.perf_counter_ns()
        if self._ids is None or self._ids.device != row.device:
            self._ids = torch.zeros(self.sample_tokens, dtype=torch.int64, device=row.device)
        with torch.no_grad():
            self._ids[:count].copy_(row[:count])
        self._id_count = count
        self._on_time(time.perf_counter_ns() - start)

    # -- work -----------------------------------------------------------------------------------

    def _capture_projection(self, row: int, split: Split, output: torch.Tensor) -> None:
        if output.dim() != 3 or output.shape[1] == 0:
            return
        tokens = min(output.shape[1], self.sample_tokens)
        if self._tokens and tokens != self._tokens:
            return
        # The first layer of the step chooses the device; a layer elsewhere (a model split over
        # GPUs) copies across.
        buffers = (
            self._buffers
            if self._tokens
            else self._buffers_for(output.device, tokens, output.dtype)
        )
        assert buffers is not None
        self._tokens = tokens
        with torch.no_grad():
            queries, keys = split(output.detach()[0, :tokens])
            if queries is not None:
                buffers.queries[row].copy_(queries)
                self._got_q[row] = True
            if keys is not None:
                buffers.keys[row].copy_(keys)
                self._got_k[row] = True

    def _note_positions(self, row: int, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> None:
        """Keep what the module's rotation needs (no tensor work: rotation is batched later)."""
        layer = self.layers[row]
        positions = layer.access.positions(args, kwargs)
        if positions is None:
            self._warn_once(
                "positions",
                "synapse: the attention lens found no position embeddings in the call of "
                f"{type(layer.module).__name__}; its layers are left out",
            )
            return
        self._positions[row] = positions
        self._done[row] = True

    def _rotated(
        self, buffers: _DeviceBuffers, runs: list[tuple[int, int]], start: int, stop: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Float32 (queries [n, H, T, D], keys [n, KV, T, D]) of rows [start, stop), rotated by
        each module's own position encoding and scaled (rows that did not run: left as they
        are; their results are never sent)."""
        queries = buffers.queries[start:stop].transpose(1, 2).to(torch.float32, copy=True)
        keys = buffers.keys[start:stop].transpose(1, 2).to(torch.float32, copy=True)
        for first, last in runs:
            low, high = max(first, start), min(last, stop)
            if low >= high:
                continue
            access = self.layers[low].access
            raw_queries = buffers.queries[low:high].transpose(1, 2)
            raw_keys = buffers.keys[low:high].transpose(1, 2)
            rotated = access.rotate(raw_queries, raw_keys, self._positions[low] or ())
            queries[low - start : high - start].copy_(rotated[0]).mul_(access.scale)
            keys[low - start : high - start].copy_(rotated[1])
        return queries, keys

    def _rotation_runs(self, rows: list[int]) -> Iterator[tuple[int, int]]:
        """[start, stop) of each run of consecutive ``rows`` rotated alike (the same rotation
        function, the very same position objects, the same scale)."""
        start = 0
        for i in range(1, len(rows) + 1):
            if i == len(rows) or not self._rotate_alike(rows[i - 1], rows[i]):
                yield rows[start], rows[i - 1] + 1
                start = i

    def _rotate_alike(self, a: int, b: int) -> bool:
        if b != a + 1:
            return False
        first, second = self.layers[a].access, self.layers[b].access
        pa, pb = self._positions[a] or (), self._positions[b] or ()
        return (
            first.rotate is second.rotate
            and first.scale == second.scale
            and len(pa) == len(pb)
            and all(x is y for x, y in zip(pa, pb, strict=True))
        )

    def _compute(self, buffers: _DeviceBuffers, rows: list[int], selected: list[int]) -> None:
        """Statistics of every layer; weights of the ``selected`` rows, in order."""
        n = len(self.layers)
        heads = self.layers[0].access.heads
        chunk = layers_per_chunk(heads, buffers.tokens)
        runs = list(self._rotation_runs(rows))
        for start in range(0, n, chunk):
            stop = min(n, start + chunk)
            queries, keys = self._rotated(buffers, runs, start, stop)
            weights, entropy, max_logit = head_attention(
                queries, keys, buffers.blocked_rows(start, stop)
            )
            buffers.stats[0, start:stop].copy_(entropy)
            buffers.stats[1, start:stop].copy_(max_logit)
            for first, position, count in _runs(selected, start, stop):
                at = position * self.heads_sent
                target = buffers.weights[at : at + count * self.heads_sent]
                source = weights[first - start : first - start + count, : self.heads_sent]
                target.view(count, self.heads_sent, *target.shape[1:]).copy_(source)

    def _next_pattern_rows(self, rows: list[int]) -> list[int]:
        """The rows of the next pattern frame: ``layers_sent`` of the rows that ran, going on
        from where the last frame stopped (round robin), in increasing order."""
        after = [row for row in rows if row >= self._cursor] + [r for r in rows if r < self._cursor]
        chosen = after[: self.layers_sent]
        self._cursor = (chosen[-1] + 1) % len(self.layers)
        return sorted(chosen)

    def _buffers_for(self, device: torch.device, tokens: int, dtype: torch.dtype) -> _DeviceBuffers:
        buffers = self._buffers
        if buffers is None or not buffers.matches(device, tokens, dtype):
            pairs = self.layers_sent * self.heads_sent
            buffers = _DeviceBuffers(self.layers, tokens, pairs, device, dtype)
            self._buffers = buffers
        return buffers

    def _reset_marks(self) -> None:
        n = len(self.layers)
        self._got_q = [False] * n
        self._got_k = [False] * n
        self._done = [False] * n
        self._positions: list[tuple[Any, ...] | None] = [None] * n
        self._tokens = 0
        self._id_count = 0

    def _warn_once(self, key: str, message: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            log.info(message)


class AttentionCapture:
    """One measured step's attention on its way off the device (the LensCapture protocol)."""

    def __init__(
        self,
        lens: AttentionLens,
        mirror: HostMirror,
        *,
        rows: list[int],
        tokens: int,
        selected: list[int],
        with_ids: bool,
        residual_rows: list[int],
    ) -> None:
        self.lens, self.mirror = lens, mirror
        self.rows, self.tokens, self.selected = rows, tokens, selected
        self.with_ids, self.residual_rows = with_ids, residual_rows
        self._released = False

    def wait(self) -> None:
        self.mirror.wait()

    def messages(self) -> list[Message]:
        """HEAD_STATS; on a pattern step also ATTENTION and RESIDUAL."""
        lens, mirror = self.lens, self.mirror
        blocks = np.array([layer.block for layer in lens.layers], np.uint16)
        stats = mirror.array("stats")
        messages: list[Message] = [
            HeadStats(
                layers=blocks[self.rows],
                entropy=stats[0][self.rows],
                max_logit=stats[1][self.rows],
                tokens=self.tokens,
            )
        ]
        if self.selected:
            messages.append(self._pattern(blocks))
        if self.residual_rows:
            norms = mirror.array("norms")[self.residual_rows]
            messages.append(ResidualTokens(np.array(self.residual_rows, np.uint16), norms))
        return messages

    def release(self) -> None:
        if not self._released:
            self._released = True
            self.lens.release(self.mirror)

    def _pattern(self, blocks: np.ndarray[Any, Any]) -> AttentionPattern:
        heads = self.lens.heads_sent
        t = self.tokens
        if self.with_ids:
            tokens = self.lens.namer.names(self.mirror.array("ids").tolist())
        else:
            tokens = tuple(f"#{i}" for i in range(t))
        weights = self.mirror.array("weights").reshape(len(self.selected) * heads, t, t)
        return AttentionPattern(
            tokens=tokens,
            layers=np.repeat(blocks[self.selected], heads),
            heads=np.tile(np.arange(heads, dtype=np.uint16), len(self.selected)),
            weights=weights.copy(),
        )


def find_attention_layers(root: nn.Module, blocks: Sequence[nn.Module]) -> list[AttentionLayer]:
    """The blocks whose attention the lens can read; logs (info) when it can read none.

    Layers must share one (heads, kv heads, head dim) layout: those that do not (rare) are left
    out, as are layouts beyond the wire's ``MAX_HEADS``.
    """
    found: list[AttentionLayer] = []
    for index, block in enumerate(blocks):
        child = find_submodule(block, "attn")
        if child is None:
            continue
        access = find_access(child[1])
        if access is not None and access.heads <= MAX_HEADS:
            found.append(AttentionLayer(index, child[1], access))
    if not found:
        log.info(
            "synapse: attention patterns are not available for %s (no attention module the probe "
            "can read; see docs/PROBE.md)",
            type(root).__name__,
        )
        return []
    layout = Counter(layer.access.layout for layer in found).most_common(1)[0][0]
    return [layer for layer in found if layer.access.layout == layout]


def _runs(selected: list[int], start: int, stop: int) -> Iterator[tuple[int, int, int]]:
    """(first row, its position in ``selected``, count) of each run of consecutive rows of
    ``selected`` (sorted) that falls in [start, stop)."""
    position = 0
    while position < len(selected):
        first = selected[position]
        count = 1
        while position + count < len(selected) and selected[position + count] == first + count:
            count += 1
        low, high = max(first, start), min(first + count, stop)
        if low < high:
            yield low, position + (low - first), high - low
        position += count


def _token_ids(args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> torch.Tensor | None:
    """The model call's token ids: ``input_ids``, else the first integer tensor argument."""
    ids = kwargs.get("input_ids")
    candidates = [ids] if ids is not None else [*args, *kwargs.values()]
    for value in candidates:
        if isinstance(value, torch.Tensor) and value.dim() >= 1 and _is_integer(value):
            return value
    return None


def _is_integer(tensor: torch.Tensor) -> bool:
    return not (tensor.is_floating_point() or tensor.is_complex() or tensor.dtype == torch.bool)
