"""The demo MoE's expert capacity: each expert takes its first assignments in token order up to
``ceil(factor * tokens * top_k / experts)``; the rest are dropped and contribute nothing."""

from __future__ import annotations

import math

import pytest
import torch

from synapse_probe.demo.model import MoE, preset
from synapse_probe.demo.train import build_parser


def naive_moe(moe: MoE, tokens: torch.Tensor, capacity: int | None) -> torch.Tensor:
    """Token by token, in order: each chosen expert runs while it has room left."""
    _, weights, chosen = moe.route(tokens)
    taken = [0] * len(moe.experts)
    rows = []
    for token, ws, es in zip(tokens, weights, chosen, strict=True):
        out = torch.zeros_like(token)
        for w, e in zip(ws, es.tolist(), strict=True):
            if capacity is None or taken[e] < capacity:
                out = out + w * moe.experts[e](token)
            taken[e] += 1
        rows.append(out)
    return torch.stack(rows)


@pytest.mark.parametrize("factor", [0.0, 0.5, 1.0])
def test_capacity_drops_the_assignments_beyond_each_experts_share(factor: float) -> None:
    torch.manual_seed(0)
    moe = MoE(preset("tiny", moe_experts=4, moe_top_k=2, moe_capacity=factor))
    tokens = torch.randn(40, moe.router.in_features)
    capacity = moe.capacity(40)
    assert capacity == (math.ceil(factor * 80 / 4) if factor else None)
    with torch.no_grad():
        got = moe(tokens.view(4, 10, -1)).view(40, -1)
        torch.testing.assert_close(got, naive_moe(moe, tokens, capacity))
        if factor == 0.5:  # 10 places per expert for 80 assignments: some tokens lose experts
            dense = naive_moe(moe, tokens, None)
            assert not torch.allclose(got, dense)


def test_capacity_comes_from_the_command_line_and_must_not_be_negative() -> None:
    args = build_parser().parse_args(["--moe", "4", "--moe-capacity", "1.25"])
    assert args.moe_capacity == 1.25
    with pytest.raises(ValueError, match="moe_capacity"):
        preset("tiny", moe_experts=4, moe_capacity=-1.0)
