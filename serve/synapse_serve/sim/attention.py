"""Attention frames of ``synapse sim``: per-head statistics every step, and now and then the
attention patterns of a few blocks and the per-token residual norms (numpy only).

Each head has a fixed kind (previous-token, first-token sink, diagonal, recent, broad) and fixed
logits over one English sentence; training sharpens every head by scaling its logits, so the
entropy drifts down and the largest logit grows. The entropy at a given sharpness comes from a
table filled as training reaches it, so a step costs a few small vector operations.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from synapse_native.protocol import AttentionPattern, HeadStats, Message, ResidualTokens

from .model import HIDDEN, N_HEADS, training_trend

# The sampled sequence: a fixed sentence as a Llama-style tokenizer would cut it (subwords,
# leading spaces, a multi-byte character or two).
TOKENS: tuple[str, ...] = (
    "<|begin_of_text|>",
    "The",
    " quick",
    " brown",
    " fox",
    " jumps",
    " over",
    " the",
    " lazy",
    " dog",
    ".",
    " Trans",
    "former",
    " heads",
    " learn",
    " to",
    " look",
    " back",
    " one",
    " token",
    ";",
    " others",
    " rest",
    " on",
    " the",
    " first",
    " —",
    " na",
    "ïve",
    "ly",
    ".",
)
PATTERN_EVERY = 10  # steps between ATTENTION + RESIDUAL frames
PATTERN_LAYERS = 4  # blocks per ATTENTION frame, taken in turn
HEAD_KINDS = ("previous", "sink", "diagonal", "recent", "broad")
_SINK_FROM_LAYER = 2  # the first token's residual norm explodes from this block on
_SINK_NORM = 40.0  # that token's norm relative to the others
_STRENGTHS = np.geomspace(0.05, 4.0, 10)  # sharpness values of the entropy table
MASKED = -1e4  # logit of a masked (future) key: its weight underflows to 0
_SPIKE_SHARPNESS = 0.5  # a spiking head's sharpness multiplier per unit of spike factor

Array = npt.NDArray[np.float32]


def sharpness(step: int) -> float:
    """How strongly training has sharpened the heads: 0.3 at step 0, about 1 by step 2000, and
    still creeping up after."""
    return 0.3 + 0.7 * (1.0 - math.exp(-step / 400.0)) + 0.1 * math.log1p(step / 2000.0)


def softmax_entropy(logits: Array) -> Array:
    """Mean over the query rows of the entropy (nats) of ``softmax(logits)`` along the last axis.

    Masked entries hold ``MASKED``: their weight underflows to exactly 0. Uses
    ``H = log Z - sum(e^z z) / Z`` with ``z`` the row-shifted logits, in place.
    """
    shifted = logits - logits.max(axis=-1, keepdims=True)
    exps = np.exp(shifted)
    total = exps.sum(axis=-1)
    shifted *= exps
    entropy: Array = (np.log(total) - shifted.sum(axis=-1) / total).mean(axis=-1)
    return entropy.astype(np.float32)


def softmax(logits: Array) -> Array:
    """Softmax along the last axis (masked entries come out exactly 0)."""
    exps: Array = np.exp(logits - logits.max(axis=-1, keepdims=True))
    exps /= exps.sum(axis=-1, keepdims=True)
    return exps


class SimAttention:
    """Heads of every block over ``TOKENS``; deterministic for a given seed."""

    def __init__(self, n_layers: int, n_heads: int = N_HEADS, *, seed: int = 0) -> None:
        rng = np.random.default_rng([seed, 3])
        self._rng = rng
        self.n_layers, self.n_heads = n_layers, n_heads
        self.tokens = TOKENS
        n_tokens = len(TOKENS)
        self.layers = np.arange(n_layers, dtype=np.uint16)
        depth = np.arange(n_layers)[:, None] / max(1, n_layers - 1)
        # Sinks become common with depth, previous-token and broad heads are early-layer heads.
        weights = np.stack(
            np.broadcast_arrays(
                0.3 - 0.15 * depth, 0.1 + 0.35 * depth, 0.1, 0.2, 0.3 - 0.2 * depth
            ),
            axis=-1,
        )[:, 0, :]
        cumulative = np.cumsum(weights / weights.sum(axis=1, keepdims=True), axis=1)
        draws = rng.random((n_layers, n_heads, 1))
        self.kinds = (draws > cumulative[:, None, :]).sum(axis=-1)  # [L, H] index in HEAD_KINDS
        self._logits = self._head_logits(rng, n_tokens)
        self._raw_max = self._logits.max(axis=(-2, -1))  # masked entries are far below
        self._entropy_table: dict[int, Array] = {}  # sharpness index -> [L, H], made on demand
        level = 0.08 * np.exp(3.2 * depth[:, 0]) * math.sqrt(HIDDEN) * 1.25  # L2 of mean |x|
        per_token = rng.lognormal(0.0, 0.2, n_tokens)
        self._residual = (level[:, None] * per_token[None, :]).astype(np.float32)
        self._residual[min(_SINK_FROM_LAYER, n_layers - 1) :, 0] *= _SINK_NORM
        self._next_layer = 0

    def _head_logits(self, rng: np.random.Generator, n_tokens: int) -> Array:
        """``[L, H, T, T]`` pre-softmax logits by head kind, ``MASKED`` above the diagonal."""
        query = np.arange(n_tokens)[:, None]
        key = np.arange(n_tokens)[None, :]
        by_kind = (
            8.0 * (key == np.maximum(query - 1, 0)),  # previous token
            8.0 * (key == 0) + 0.0 * query,  # first-token sink
            7.0 * (key == query),  # diagonal
            -0.8 * (query - key),  # recent tokens, decaying
            0.0 * (query + key),  # broad
        )
        shapes = np.stack(by_kind).astype(np.float32)
        gain = rng.lognormal(0.0, 0.2, (self.n_layers, self.n_heads, 1, 1)).astype(np.float32)
        shape = (self.n_layers, self.n_heads, n_tokens, n_tokens)
        logits: Array = shapes[self.kinds] * gain
        logits += rng.standard_normal(shape, np.float32) * np.float32(0.4)
        logits[..., ~np.tril(np.ones((n_tokens, n_tokens), bool))] = MASKED
        return logits

    def _entropy_at(self, index: int) -> Array:
        """Every head's entropy at sharpness ``_STRENGTHS[index]`` (each computed once: training
        sharpens slowly, so a run needs a new one every few hundred steps)."""
        entropy = self._entropy_table.get(index)
        if entropy is None:
            entropy = softmax_entropy(np.float32(_STRENGTHS[index]) * self._logits)
            self._entropy_table[index] = entropy
        return entropy

    def _spiking_head(self, spike: tuple[int, float] | None) -> tuple[int, int, float] | None:
        """(block, head, sharpness multiplier) of a spike, the head picked by its factor."""
        if spike is None or not 0 <= spike[0] < self.n_layers:
            return None
        layer, factor = spike
        return layer, int(factor * 1000) % self.n_heads, _SPIKE_SHARPNESS * factor

    def head_stats(self, step: int, spike: tuple[int, float] | None = None) -> HeadStats:
        """Entropy and largest logit of every head at ``step`` (a spike sharpens one head)."""
        strength = sharpness(step)
        position = float(
            np.interp(math.log(strength), np.log(_STRENGTHS), np.arange(len(_STRENGTHS)))
        )
        low = min(int(position), len(_STRENGTHS) - 2)
        frac = position - low
        entropy = (1.0 - frac) * self._entropy_at(low) + frac * self._entropy_at(low + 1)
        jitter = self._rng.normal(0.0, 0.01, (2, self.n_layers, self.n_heads))
        entropy = entropy * (1.0 + jitter[0])
        max_logit = strength * self._raw_max * (1.0 + jitter[1])
        spiking = self._spiking_head(spike)
        if spiking is not None:
            layer, head, boost = spiking
            scaled = strength * boost * self._logits[layer, head]
            entropy[layer, head] = softmax_entropy(scaled)
            max_logit[layer, head] = strength * boost * self._raw_max[layer, head]
        return HeadStats(
            self.layers,
            entropy.astype(np.float32),
            max_logit.astype(np.float32),
            len(self.tokens),
        )

    def pattern(self, step: int, spike: tuple[int, float] | None = None) -> AttentionPattern:
        """All heads of the next ``PATTERN_LAYERS`` blocks (in turn), noisy around their kind."""
        count = min(PATTERN_LAYERS, self.n_layers)
        chosen = (self._next_layer + np.arange(count)) % self.n_layers
        self._next_layer = int(chosen[-1] + 1) % self.n_layers
        strength = np.full((count, self.n_heads, 1, 1), sharpness(step), np.float32)
        spiking = self._spiking_head(spike)
        if spiking is not None and spiking[0] in chosen:
            strength[int(np.flatnonzero(chosen == spiking[0])[0]), spiking[1]] *= spiking[2]
        logits = self._logits[chosen] * strength
        logits += self._rng.standard_normal(logits.shape, np.float32) * np.float32(0.15)
        n_tokens = len(self.tokens)
        weights = softmax(logits).astype(np.float16).reshape(-1, n_tokens, n_tokens)
        return AttentionPattern(
            tokens=self.tokens,
            layers=np.repeat(chosen, self.n_heads).astype(np.uint16),
            heads=np.tile(np.arange(self.n_heads), count).astype(np.uint16),
            weights=weights,
        )

    def residual(self, step: int) -> ResidualTokens:
        """Per-token residual norms after each block: growing with depth and training, and huge
        on the first token from the third block on."""
        noise = self._rng.lognormal(0.0, 0.03, self._residual.shape)
        norms = (self._residual * training_trend(step) * noise).astype(np.float32)
        return ResidualTokens(self.layers, norms)

    def messages(self, step: int, spike: tuple[int, float] | None = None) -> list[Message]:
        """HEAD_STATS every step; ATTENTION and RESIDUAL every ``PATTERN_EVERY`` steps."""
        messages: list[Message] = [self.head_stats(step, spike)]
        if step % PATTERN_EVERY == 0:
            messages += [self.pattern(step, spike), self.residual(step)]
        return messages
