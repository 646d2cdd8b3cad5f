"""The demo model against naive references: attention, rotary embeddings, expert routing; and
that it learns, and that the probe's discovery finds it."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from synapse_probe.demo import model as demo_model
from synapse_probe.demo.data import Windows, load_corpus, split, stdlib_files
from synapse_probe.demo.model import MoE, Rotary, preset
from synapse_probe.demo.train import Trainer
from synapse_probe.discovery import find_blocks, find_sites


def naive_rope(x: torch.Tensor, theta: float) -> torch.Tensor:
    """Rotate each pair (i, i + d/2) of x (b, h, t, d) by position * theta^(-2i/d)."""
    d = x.shape[-1]
    out = torch.empty_like(x)
    for pos in range(x.shape[-2]):
        for i in range(d // 2):
            angle = pos * theta ** (-2 * i / d)
            a, b = x[..., pos, i], x[..., pos, i + d // 2]
            out[..., pos, i] = a * math.cos(angle) - b * math.sin(angle)
            out[..., pos, i + d // 2] = a * math.sin(angle) + b * math.cos(angle)
    return out


def naive_attention(attn: demo_model.Attention, x: torch.Tensor, theta: float) -> torch.Tensor:
    """softmax(QK^T / sqrt(d)) V with a causal mask, each query head on its group's kv head."""
    b, t, d = x.shape
    hd, heads, kv_heads = attn.head_dim, attn.n_heads, attn.n_kv_heads
    q = naive_rope(attn.q_proj(x).view(b, t, heads, hd).transpose(1, 2), theta)
    k = naive_rope(attn.k_proj(x).view(b, t, kv_heads, hd).transpose(1, 2), theta)
    v = attn.v_proj(x).view(b, t, kv_heads, hd).transpose(1, 2)
    causal = torch.ones(t, t, dtype=torch.bool).tril()
    heads_out = []
    for h in range(heads):
        g = h // (heads // kv_heads)
        scores = q[:, h] @ k[:, g].transpose(-1, -2) / math.sqrt(hd)
        weights = torch.softmax(scores.masked_fill(~causal, float("-inf")), dim=-1)
        heads_out.append(weights @ v[:, g])
    y = torch.stack(heads_out, dim=1).transpose(1, 2).reshape(b, t, d)
    return attn.o_proj(y)


@pytest.mark.parametrize("fused_gqa", [True, False])
def test_gqa_attention_with_rope_equals_a_naive_per_head_reference(
    fused_gqa: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(demo_model, "_SDPA_GQA", fused_gqa and demo_model._SDPA_GQA)
    torch.manual_seed(0)
    config = preset("tiny", d_model=32, n_heads=4, n_kv_heads=2, seq_len=12)
    model = demo_model.DemoForCausalLM(config)
    attn = model.model.layers[0].self_attn
    assert attn.n_kv_heads < attn.n_heads
    x = torch.randn(2, 12, 32)
    with torch.no_grad():
        expected = naive_attention(attn, x, config.rope_theta)
        torch.testing.assert_close(attn(x), expected, atol=1e-5, rtol=1e-4)


def test_rope_preserves_norms_and_scores_depend_on_relative_position_only() -> None:
    torch.manual_seed(0)
    rotary = Rotary(head_dim=16, max_len=32, theta=10000.0)
    x = torch.randn(1, 2, 32, 16)
    torch.testing.assert_close(rotary(x).norm(dim=-1), x.norm(dim=-1))
    # the same query and key vector at every position: q_m . k_n must be a function of m - n
    q = rotary(torch.randn(16).expand(1, 1, 32, 16))[0, 0]
    k = rotary(torch.randn(16).expand(1, 1, 32, 16))[0, 0]
    scores = q @ k.T
    torch.testing.assert_close(scores[1:, 1:], scores[:-1, :-1], atol=1e-4, rtol=1e-4)
    assert not torch.allclose(scores[0, 0], scores[5, 0])  # it does depend on the offset


def test_moe_routes_each_token_to_exactly_two_experts_with_weights_summing_to_one() -> None:
    torch.manual_seed(0)
    moe = MoE(preset("tiny", moe_experts=5))
    tokens = torch.randn(40, moe.router.in_features)
    logits, weights, chosen = moe.route(tokens)
    assert logits.shape == (40, 5) and chosen.shape == (40, 2)
    assert all(len(set(row.tolist())) == 2 for row in chosen)
    torch.testing.assert_close(weights.sum(-1), torch.ones(40))
    best_two = logits.topk(2, dim=-1).indices
    assert torch.equal(chosen, best_two)
    probs = torch.softmax(logits, dim=-1).gather(1, chosen)
    torch.testing.assert_close(weights, probs / probs.sum(-1, keepdim=True))
    # the layer's output is the weighted sum of the chosen experts' outputs
    with torch.no_grad():
        expected = torch.stack(
            [
                sum(w * moe.experts[int(e)](tok) for w, e in zip(ws, es, strict=True))
                for tok, ws, es in zip(tokens, weights, chosen, strict=True)
            ]
        )
        torch.testing.assert_close(moe(tokens.view(4, 10, -1)).view(40, -1), expected)


def test_router_logits_are_a_submodule_output() -> None:
    model = demo_model.DemoForCausalLM(preset("tiny", n_layers=2, moe_experts=4))
    seen: list[torch.Tensor] = []
    model.model.layers[1].mlp.router.register_forward_hook(lambda m, a, out: seen.append(out))
    model(torch.randint(0, 256, (2, 8)))
    assert len(seen) == 1 and seen[0].shape == (16, 4)


def test_loss_falls_on_standard_library_text() -> None:
    torch.manual_seed(0)
    train, held_out = split(load_corpus(1 << 20))
    assert len(held_out) > 0
    model = demo_model.DemoForCausalLM(preset("tiny", n_layers=2))
    trainer = Trainer(model, Windows(train, 8, 64, seed=0), lr=3e-3, warmup=5, horizon=40)
    losses = [float(trainer.step(step)[0]) for step in range(40)]
    assert losses[0] == pytest.approx(math.log(256), abs=0.3)  # uniform over bytes at first
    assert sum(losses[-5:]) / 5 < sum(losses[:5]) / 5 - 1.0


def test_corpus_is_the_standard_library_in_a_fixed_order() -> None:
    files = stdlib_files()
    assert files == sorted(files) and all(f.suffix == ".py" for f in files)
    assert not any("site-packages" in f.parts for f in files)
    first = load_corpus(10_000)
    assert len(first) == 10_000 and torch.equal(first, load_corpus(10_000))
    a, b = Windows(first, 4, 32, seed=3), Windows(first, 4, 32, seed=3)
    (xa, ya), (xb, _) = a.sample(), b.sample()
    assert torch.equal(xa, xb) and torch.equal(xa[:, 1:], ya[:, :-1])


def test_discovery_finds_every_layer_and_site_by_the_models_names() -> None:
    model = demo_model.DemoForCausalLM(preset("tiny"))
    blocks = find_blocks(model)
    assert [name for name, _ in blocks] == [f"model.layers.{i}" for i in range(8)]
    names = [(s.layer, s.kind, s.name) for s in find_sites(model, blocks, "attn+mlp+residual")]
    assert len(names) == 24
    assert names[:3] == [
        (0, "attn", "model.layers.0.self_attn"),
        (0, "mlp", "model.layers.0.mlp"),
        (0, "residual", "model.layers.0"),
    ]
    assert names[-1] == (7, "residual", "model.layers.7")


def test_forward_gives_byte_logits_and_gradients_reach_every_parameter() -> None:
    model = demo_model.DemoForCausalLM(preset("tiny", n_layers=2, moe_experts=3))
    ids = torch.randint(0, 256, (2, 16))
    model.loss(ids[:, :-1], ids[:, 1:]).backward()
    assert model(ids).shape == (2, 16, 256)
    assert all(p.grad is not None for p in model.parameters())
    assert F.softmax(model(ids), -1).sum(-1).allclose(torch.ones(2, 16))
