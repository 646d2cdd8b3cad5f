"""Mixture-of-experts routing of ``synapse sim --moe N``: one MOE_ROUTING frame per step.

Every block routes each token to its ``top_k`` experts. Expert popularity wanders around a
per-block preference; one expert of the middle block slowly falls out of favour and, from
``STARVED_AT`` on, gets no token at all (what a dead-expert alert should catch).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from synapse_native.protocol import MAX_EXPERTS, MoeRouting

STARVE_FROM = 100  # the starving expert starts losing tokens at this step
STARVED_AT = 300  # and gets none from this step on
CAPACITY_FACTOR = 2.0  # assignments an expert takes, relative to an even share; the rest drop


class SimRouter:
    """Routers of ``n_layers`` MoE blocks of ``n_experts`` experts; deterministic for a seed."""

    def __init__(
        self, n_layers: int, n_experts: int, *, tokens: int, top_k: int = 2, seed: int = 0
    ) -> None:
        if not 2 <= n_experts <= MAX_EXPERTS:
            raise ValueError(f"--moe takes 2 to {MAX_EXPERTS} experts, got {n_experts}")
        self.n_layers, self.n_experts = n_layers, n_experts
        self.top_k = min(top_k, n_experts)
        self.assignments = tokens * self.top_k  # per block and step
        self._rng = np.random.default_rng([seed, 4])
        self._base = self._rng.normal(0.0, 0.25, (n_layers, n_experts))
        self._log_popularity = self._base.copy()
        self.layers = np.arange(n_layers, dtype=np.uint16)
        self.starving = (n_layers // 2, int(self._rng.integers(0, n_experts)))  # (block, expert)
        self._capacity = int(np.ceil(CAPACITY_FACTOR * self.assignments / n_experts))

    def popularity(self, step: int) -> npt.NDArray[np.float64]:
        """This step's share of assignments per block and expert (rows sum to 1)."""
        walk = self._rng.normal(0.0, 0.05, self._base.shape)
        self._log_popularity = 0.9 * self._log_popularity + 0.1 * self._base + walk
        shares = np.exp(self._log_popularity)
        shares[self.starving] *= starving_share(step)
        normalised: npt.NDArray[np.float64] = shares / shares.sum(axis=1, keepdims=True)
        return normalised

    def routing(self, step: int) -> MoeRouting:
        """This step's MOE_ROUTING: the router's assignments per expert, mean router
        probabilities, and how many of the assignments an expert's capacity dropped."""
        shares = self.popularity(step)
        wanted = self._rng.multinomial(self.assignments, shares)
        dropped = np.maximum(wanted - self._capacity, 0).sum(axis=1)
        probs = (shares + 0.02 / self.n_experts) / 1.02  # softmax never gives exactly 0
        return MoeRouting(
            layers=self.layers,
            tokens=wanted.astype(np.uint32),
            probs=probs.astype(np.float32),
            dropped=dropped.astype(np.uint32),
            top_k=self.top_k,
        )


def starving_share(step: int) -> float:
    """The starving expert's share of its normal popularity: 1, fading to 0 at ``STARVED_AT``."""
    if step < STARVE_FROM:
        return 1.0
    left = max(0.0, 1.0 - (step - STARVE_FROM) / (STARVED_AT - STARVE_FROM))
    return left * left
