"""The attention lens on the demo model: head statistics, patterns, token strings and residual
norms equal to attention computed by hand from the model's weights; rates and options."""

from __future__ import annotations

import math
import threading
import time

import numpy as np
import pytest
import torch
from attention_frames import entropy_of, lens_frames, reference_attention
from torch import nn

import synapse_probe
from synapse_native.protocol import (
    MAX_TOKEN_BYTES,
    AttentionPattern,
    Capability,
    HeadStats,
    ResidualTokens,
)
from synapse_probe.demo.model import DemoForCausalLM, preset
from synapse_probe.demo.train import byte_tokens
from synapse_probe.encoder import QUEUE_SIZE, Encoder
from synapse_probe.lenses import attention as attention_module
from synapse_probe.snapshot import HostPool, Snapshot

EVERY_STEP = math.inf
ONCE = 1e-6  # a rate whose second sample would come after 11 days
BATCH, SEQ, SAMPLED = 3, 20, 12


def demo_model(n_layers: int = 2, **changes: object) -> DemoForCausalLM:
    torch.manual_seed(0)
    config = preset("tiny", n_layers=n_layers, seq_len=32, **changes)
    return DemoForCausalLM(config)


def token_batch(seed: int = 1, vocab: int = 256) -> torch.Tensor:
    return torch.randint(0, vocab, (BATCH, SEQ), generator=torch.Generator().manual_seed(seed))


def train_steps(model: DemoForCausalLM, probe: synapse_probe.Probe, ids: torch.Tensor, n: int):
    """Each step is sent before the next begins: under a loaded machine the encoder may fall
    behind and drop (and count) a step, which is right for training but not what these tests ask."""
    for step in range(n):
        probe.step(step)
        model.loss(ids, ids).backward()
        assert probe.flush()


@torch.no_grad()
def by_hand(model: DemoForCausalLM, ids: torch.Tensor, tokens: int) -> list[dict[str, object]]:
    """Per layer: attention of ids[0, :tokens] from the weights, with rotary embeddings written
    out here, and the block output; checked against the module's own output."""
    config = model.config
    heads, kv_heads, dim = config.n_heads, config.n_kv_heads, config.head_dim
    inputs: dict[int, torch.Tensor] = {}
    outputs: dict[int, torch.Tensor] = {}
    blocks: dict[int, torch.Tensor] = {}
    handles = []
    for i, layer in enumerate(model.model.layers):
        handles.append(
            layer.self_attn.register_forward_pre_hook(
                lambda m, args, i=i: inputs.__setitem__(i, args[0][0].detach())
            )
        )
        handles.append(
            layer.self_attn.register_forward_hook(
                lambda m, args, out, i=i: outputs.__setitem__(i, out[0].detach())
            )
        )
        handles.append(
            layer.register_forward_hook(
                lambda m, args, out, i=i: blocks.__setitem__(i, out[0].detach())
            )
        )
    model(ids[:1, :tokens])
    for handle in handles:
        handle.remove()

    inv_freq = config.rope_theta ** (-torch.arange(0, dim, 2, dtype=torch.float64) / dim)
    angles = torch.outer(torch.arange(tokens, dtype=torch.float64), inv_freq).repeat(1, 2)

    def rotate(x: torch.Tensor) -> torch.Tensor:  # [n, T, D], rotate-half form
        half = x.shape[-1] // 2
        turned = torch.cat((-x[..., half:], x[..., :half]), dim=-1)
        return x * angles.cos() + turned * angles.sin()

    layers = []
    for i, layer in enumerate(model.model.layers):
        attn = layer.self_attn
        x = inputs[i].double()
        q = (x @ attn.q_proj.weight.double().T).view(tokens, heads, dim).transpose(0, 1)
        k = (x @ attn.k_proj.weight.double().T).view(tokens, kv_heads, dim).transpose(0, 1)
        v = (x @ attn.v_proj.weight.double().T).view(tokens, kv_heads, dim).transpose(0, 1)
        weights, entropy, max_logit = reference_attention(rotate(q), rotate(k), dim**-0.5)
        mixed = torch.from_numpy(weights) @ v.repeat_interleave(heads // kv_heads, dim=0)
        out = mixed.transpose(0, 1).reshape(tokens, -1) @ attn.o_proj.weight.double().T
        np.testing.assert_allclose(out.numpy(), outputs[i].double().numpy(), atol=1e-5)
        layers.append(
            {"weights": weights, "entropy": entropy, "max_logit": max_logit, "block": blocks[i]}
        )
    return layers


def test_demo_model_attention_matches_attention_by_hand(server) -> None:
    model = demo_model()
    ids = token_batch()
    probe = synapse_probe.attach(
        model, server=server, rate_hz=EVERY_STEP, pattern_hz=EVERY_STEP, sample_tokens=SAMPLED
    )
    train_steps(model, probe, ids, 1)
    probe.close()
    expected = by_hand(model, ids, SAMPLED)
    heads = model.config.n_heads

    [(step, stats)] = lens_frames(server, HeadStats)
    assert step == 0 and stats.tokens == SAMPLED and stats.layers.tolist() == [0, 1]
    for i, layer in enumerate(expected):
        np.testing.assert_allclose(stats.entropy[i], layer["entropy"], rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(stats.max_logit[i], layer["max_logit"], rtol=1e-4, atol=1e-5)

    [(_, pattern)] = lens_frames(server, AttentionPattern)
    assert pattern.layers.tolist() == [0] * heads + [1] * heads
    assert pattern.heads.tolist() == list(range(heads)) * 2
    assert pattern.tokens == tuple(str(i) for i in ids[0, :SAMPLED].tolist())
    assert pattern.weights.shape == (2 * heads, SAMPLED, SAMPLED)
    for p, (layer, head) in enumerate(zip(pattern.layers, pattern.heads, strict=True)):
        np.testing.assert_allclose(
            pattern.weights[p], expected[layer]["weights"][head], atol=1e-3, rtol=1e-3
        )
    assert (np.triu(pattern.weights.astype(np.float32), k=1) == 0).all()  # causal

    [(_, residual)] = lens_frames(server, ResidualTokens)
    assert residual.layers.tolist() == [0, 1]
    for i, layer in enumerate(expected):
        norms = torch.linalg.vector_norm(layer["block"].double(), dim=-1).numpy()
        np.testing.assert_allclose(residual.norms[i], norms, rtol=1e-5)


def test_head_stats_every_measured_step_patterns_at_their_own_rate(server) -> None:
    model = demo_model()
    probe = synapse_probe.attach(model, server=server, rate_hz=EVERY_STEP, pattern_hz=ONCE)
    train_steps(model, probe, token_batch(), 4)
    probe.close()
    stats = lens_frames(server, HeadStats)
    assert [step for step, _ in stats] == [0, 1, 2, 3]
    assert all(s.tokens == SEQ and s.entropy.shape == (2, 4) for _, s in stats)
    assert [step for step, _ in lens_frames(server, AttentionPattern)] == [0]
    assert [step for step, _ in lens_frames(server, ResidualTokens)] == [0]
    # The lens's frames close the step they belong to: the step's last frame ends it.
    last_of_step0 = [m for s, f, m in server.messages if s == 0 and f][-1]
    assert isinstance(last_of_step0, ResidualTokens)


def test_patterns_come_only_on_measured_steps(server) -> None:
    model = demo_model()
    probe = synapse_probe.attach(model, server=server, rate_hz=ONCE, pattern_hz=EVERY_STEP)
    train_steps(model, probe, token_batch(), 3)
    probe.close()
    assert [step for step, _ in lens_frames(server, HeadStats)] == [0]
    assert [step for step, _ in lens_frames(server, AttentionPattern)] == [0]


def test_entropy_is_that_of_the_sent_weights(server) -> None:
    model = demo_model()
    probe = synapse_probe.attach(model, server=server, rate_hz=EVERY_STEP, pattern_hz=EVERY_STEP)
    train_steps(model, probe, token_batch(), 1)
    probe.close()
    [(_, stats)] = lens_frames(server, HeadStats)
    [(_, pattern)] = lens_frames(server, AttentionPattern)
    sent = entropy_of(pattern.weights).reshape(2, -1)
    np.testing.assert_allclose(stats.entropy, sent, rtol=2e-3, atol=2e-3)
    rows = pattern.weights.astype(np.float64).sum(-1)
    np.testing.assert_allclose(rows, 1.0, atol=5e-3)


def test_attention_false_sends_no_lens_frames(server) -> None:
    model = demo_model()
    probe = synapse_probe.attach(model, server=server, rate_hz=EVERY_STEP, attention=False)
    train_steps(model, probe, token_batch(), 2)
    probe.close()
    assert server.steps() == [0, 1]
    assert not [m for _, _, m in server.messages if isinstance(m, (HeadStats, AttentionPattern))]
    assert not [m for _, _, m in server.messages if isinstance(m, ResidualTokens)]


@pytest.mark.parametrize("attention", [True, False])
def test_server_announces_attention_and_residual_when_the_lens_runs(attention: bool) -> None:
    client_module = pytest.importorskip("synapse_native.client")
    from synapse_native.protocol import Hello

    probe = synapse_probe.attach(demo_model(), port=0, attention=attention)
    try:
        host, port = probe.address
        with client_module.StreamClient.connect(host, port) as client:
            hello = client.hello.message
            assert isinstance(hello, Hello)
            lens_bits = Capability.ATTENTION | Capability.RESIDUAL
            assert hello.capabilities & lens_bits == (lens_bits if attention else 0)
    finally:
        probe.close()


def test_a_model_without_readable_attention_gets_no_lens(server, caplog) -> None:
    class Block(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.attn = nn.MultiheadAttention(8, 2, batch_first=True)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x + self.attn(x, x, x, need_weights=False)[0]

    class TorchAttentionModel(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embed = nn.Embedding(10, 8)
            self.layers = nn.ModuleList([Block(), Block()])

        def forward(self, ids: torch.Tensor) -> torch.Tensor:
            x = self.embed(ids)
            for layer in self.layers:
                x = layer(x)
            return x

    model = TorchAttentionModel()
    with caplog.at_level("INFO", logger="synapse_probe.lenses.attention"):
        probe = synapse_probe.attach(model, server=server, rate_hz=EVERY_STEP)
    assert "attention patterns are not available for TorchAttentionModel" in caplog.text
    probe.step(0)
    model(torch.zeros(2, 5, dtype=torch.long)).sum().backward()
    probe.close()
    assert not lens_frames(server, HeadStats)
    assert server.steps() == [0]


def test_tokens_come_from_a_tokenizer_callable_cut_to_the_wire_limit(server) -> None:
    model = demo_model()
    ids = token_batch()

    def tokenizer(values: list[int]) -> list[str]:
        return [f"é{v}" * 40 for v in values]  # 80+ bytes of UTF-8 each

    probe = synapse_probe.attach(
        model, server=server, rate_hz=EVERY_STEP, pattern_hz=EVERY_STEP, tokenizer=tokenizer
    )
    train_steps(model, probe, ids, 1)
    probe.close()
    [(_, pattern)] = lens_frames(server, AttentionPattern)
    for token, value in zip(pattern.tokens, ids[0].tolist(), strict=True):
        assert len(token.encode()) <= MAX_TOKEN_BYTES
        assert (f"é{value}" * 40).startswith(token) and len(token) >= MAX_TOKEN_BYTES // 5


def test_a_hugging_face_style_tokenizer_decodes_each_token(server) -> None:
    class Tokenizer:
        def convert_ids_to_tokens(self, values: list[int]) -> list[str]:
            return [f"Ġ{v}" for v in values]  # byte-level BPE's marker: not what users read

        def decode(self, values: list[int]) -> str:
            [value] = values
            return f"<{value}>"

    model = demo_model()
    ids = token_batch()
    probe = synapse_probe.attach(
        model, server=server, rate_hz=EVERY_STEP, pattern_hz=EVERY_STEP, tokenizer=Tokenizer()
    )
    train_steps(model, probe, ids, 1)
    probe.close()
    [(_, pattern)] = lens_frames(server, AttentionPattern)
    assert pattern.tokens == tuple(f"<{v}>" for v in ids[0].tolist())


def test_the_demo_shows_bytes_as_characters() -> None:
    text = "def f(x):\n\treturn x  # é"
    shown = byte_tokens(list(text.encode()))
    assert shown[:9] == ["d", "e", "f", "␣", "f", "(", "x", ")", ":"]
    assert shown[9:11] == ["⏎", "⇥"]
    assert shown[-2:] == ["\\xc3", "\\xa9"]  # é is two bytes of UTF-8


def test_patterns_go_round_robin_over_layers_when_all_do_not_fit(server, monkeypatch) -> None:
    monkeypatch.setattr(attention_module, "MAX_ATTENTION_PAIRS", 8)  # two layers of 4 heads
    model = demo_model(n_layers=5)
    probe = synapse_probe.attach(model, server=server, rate_hz=EVERY_STEP, pattern_hz=EVERY_STEP)
    train_steps(model, probe, token_batch(), 4)
    probe.close()
    frames = lens_frames(server, AttentionPattern)
    layers = [sorted(set(p.layers.tolist())) for _, p in frames]
    assert layers == [[0, 1], [2, 3], [0, 4], [1, 2]]
    assert all(p.heads.tolist() == [0, 1, 2, 3] * 2 for _, p in frames)
    assert all(s.layers.tolist() == [0, 1, 2, 3, 4] for _, s in lens_frames(server, HeadStats))


def test_captures_of_dropped_steps_go_back_to_the_lens(server) -> None:
    """A stalled encoder drops steps; their captures' host memory is returned, so the lens
    sends again once the encoder catches up."""
    gate = threading.Event()
    broadcast_step = server.broadcast_step

    def stalled(messages, *, step):
        gate.wait(10)
        return broadcast_step(messages, step=step)

    server.broadcast_step = stalled
    model = demo_model()
    ids = token_batch()
    probe = synapse_probe.attach(model, server=server, rate_hz=EVERY_STEP, pattern_hz=EVERY_STEP)
    for step in range(8):
        probe.step(step)
        model.loss(ids, ids).backward()
    counters = probe.stats()
    assert counters.steps_skipped + counters.snapshots_dropped >= 3
    gate.set()
    assert probe.flush()
    sent_before = {step for step, _ in lens_frames(server, HeadStats)}
    for step in range(8, 16):
        probe.step(step)
        model.loss(ids, ids).backward()
        assert probe.flush()
    probe.close()
    steps = [step for step, _ in lens_frames(server, HeadStats)]
    assert steps == sorted(sent_before) + list(range(8, 16))
    assert [step for step, _ in lens_frames(server, AttentionPattern)] == steps


def test_the_encoder_releases_the_captures_of_a_snapshot_it_drops(server) -> None:
    class Capture:
        released = 0

        def wait(self) -> None: ...

        def messages(self) -> list:
            return []

        def release(self) -> None:
            self.released += 1

    gate = threading.Event()
    broadcast_step = server.broadcast_step
    server.broadcast_step = lambda messages, *, step: (
        gate.wait(10) and broadcast_step(messages, step=step)
    )
    encoder = Encoder(server, None)
    pool = HostPool(QUEUE_SIZE + 3)
    captures = [Capture() for _ in range(QUEUE_SIZE + 3)]
    for step, capture in enumerate(captures):
        snapshot = Snapshot(step, pool.acquire(), pool, 1.0, captures=[capture])
        encoder.submit(snapshot)
        time.sleep(0.05)  # the first one reaches the (stalled) server
    dropped = [c.released for c in captures]
    gate.set()
    encoder.close()
    assert encoder.dropped == 2 and dropped == [0] * (QUEUE_SIZE + 1) + [1, 1]
    assert [c.released for c in captures] == [1] * len(captures)


def test_bfloat16_autocast_gives_the_float32_statistics_to_bfloat16_precision(server) -> None:
    """Projections in bfloat16 (autocast, boundary inside it too): the lens reads them in their
    dtype and still computes in float32."""
    model = demo_model()
    ids = token_batch()
    probe = synapse_probe.attach(model, server=server, rate_hz=EVERY_STEP, pattern_hz=EVERY_STEP)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        for step in range(3):  # float32, bfloat16, then the boundary that sends it
            probe.step(step)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=step == 1):
                model.loss(ids, ids).backward()
        assert probe.flush()
    probe.close()
    (_, exact), (_, bf16), _ = lens_frames(server, HeadStats)
    assert not np.array_equal(exact.entropy, bf16.entropy)  # bfloat16 really ran
    np.testing.assert_allclose(bf16.entropy, exact.entropy, rtol=0.03, atol=0.03)
    np.testing.assert_allclose(bf16.max_logit, exact.max_logit, rtol=0.05, atol=0.05)


def test_sample_tokens_out_of_range_is_refused(server) -> None:
    with pytest.raises(ValueError, match="sample_tokens"):
        synapse_probe.attach(demo_model(), server=server, sample_tokens=129)


def test_a_compiled_model_sends_the_same_head_stats(server) -> None:
    ids = token_batch()
    model = demo_model()
    eager = synapse_probe.attach(model, server=server, rate_hz=EVERY_STEP)
    train_steps(model, eager, ids, 1)
    eager.close()
    [(_, expected)] = lens_frames(server, HeadStats)

    torch._dynamo.reset()
    compiled_server = type(server)()
    probe = synapse_probe.attach(model, server=compiled_server, rate_hz=EVERY_STEP)
    compiled = torch.compile(model, backend="aot_eager")
    try:
        probe.step(0)
        logits = compiled(ids)
        logits.float().logsumexp(-1).mean().backward()
        assert probe.flush()
    finally:
        probe.close()
        torch._dynamo.reset()
    [(_, got)] = lens_frames(compiled_server, HeadStats)
    np.testing.assert_allclose(got.entropy, expected.entropy, rtol=1e-5)
    np.testing.assert_allclose(got.max_logit, expected.max_logit, rtol=1e-5)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_no_host_sync_with_the_attention_lens_on_cuda(server) -> None:
    model = demo_model().cuda()
    ids = token_batch().cuda()
    probe = synapse_probe.attach(model, server=server, rate_hz=EVERY_STEP, pattern_hz=EVERY_STEP)
    for _ in range(4):  # warm-up: first-use allocations, pinned host memory of every mirror
        model.loss(ids, ids).backward()
    assert probe.flush()
    torch.cuda.synchronize()
    before = len(lens_frames(server, AttentionPattern))
    torch.cuda.set_sync_debug_mode("error")
    try:
        for _ in range(3):
            with torch.autocast("cuda", dtype=torch.bfloat16):
                loss = model.loss(ids, ids)
            loss.backward()
        probe.step(100)  # the boundary that finishes the last step, still under the check
    finally:
        torch.cuda.set_sync_debug_mode(0)
    probe.close()
    patterns = lens_frames(server, AttentionPattern)
    assert len(patterns) >= before + 3
    assert all(np.isfinite(p.weights.astype(np.float32)).all() for _, p in patterns)
