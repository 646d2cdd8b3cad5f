"""The MoE routing lens: per-expert assignments, mean router probabilities and dropped
assignments of every measured step, checked against the router logits seen by the test's own
hooks (the demo model) or returned by the model (transformers' Mixtral)."""

from __future__ import annotations

import math
import time
from dataclasses import replace
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

import synapse_probe
from synapse_native.protocol import Capability, Hello, MoeRouting, MsgType
from synapse_probe.demo.model import DemoForCausalLM, preset
from synapse_probe.discovery import find_blocks
from synapse_probe.lenses.routing import MoeRoutingLens
from synapse_probe.lenses.routing_discovery import Choice, find_routers

EXPERTS, TOP_K, LAYERS, BATCH, TOKENS = 4, 2, 2, 2, 12
EVERY_STEP = math.inf


def demo_moe(capacity: float = 0.0) -> DemoForCausalLM:
    torch.manual_seed(0)
    config = preset(
        "tiny", n_layers=LAYERS, moe_experts=EXPERTS, moe_top_k=TOP_K, moe_capacity=capacity
    )
    return DemoForCausalLM(config).train()


def tiny_mixtral() -> nn.Module:
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    config = transformers.MixtralConfig(
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=LAYERS,
        num_attention_heads=4,
        num_key_value_heads=2,
        vocab_size=128,
        max_position_embeddings=64,
        num_local_experts=EXPERTS,
        num_experts_per_tok=TOP_K,
    )
    model: nn.Module = transformers.MixtralForCausalLM(config)
    return model.train()


def ids(vocab: int, seed: int = 1) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, vocab, (BATCH, TOKENS), generator=generator)


def router_logits(model: DemoForCausalLM) -> list[torch.Tensor]:
    """The demo routers' logits of the next forward pass, by a hook of the test's own."""
    seen: list[torch.Tensor] = []
    for layer in model.model.layers:
        router = layer.mlp.router
        router.register_forward_hook(lambda m, a, out: seen.append(out.detach().clone()))
    return seen


def expected(logits: torch.Tensor, chosen: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """(assignments per expert, mean softmax probability per expert), counted by hand."""
    counts = np.zeros(EXPERTS, np.int64)
    for expert in chosen.reshape(-1).tolist():
        counts[expert] += 1
    probs = torch.softmax(logits.double(), dim=-1).mean(0).numpy()
    return counts, probs


def measure(lens: MoeRoutingLens, run: Any, step: int = 0) -> MoeRouting:
    """Run ``run()`` as a measured step and return the lens's frame."""
    lens.begin(step, True)
    run()
    capture = lens.finish()
    assert capture is not None
    capture.wait()
    messages = capture.messages()
    capture.release()
    assert len(messages) == 1 and isinstance(messages[0], MoeRouting)
    return messages[0]


def demo_step(model: DemoForCausalLM, seed: int = 1) -> None:
    x = ids(256, seed)
    model.loss(x[:, :-1], x[:, 1:]).backward()


def test_demo_counts_and_probabilities_match_the_router_logits() -> None:
    model = demo_moe()
    lens = MoeRoutingLens.for_blocks(find_blocks(model))
    assert lens is not None
    assert [(s.name, s.experts, s.top_k) for s in lens.routers] == [
        (f"model.layers.{i}.mlp.router", EXPERTS, TOP_K) for i in range(LAYERS)
    ]
    seen = router_logits(model)
    frame = measure(lens, lambda: demo_step(model))
    tokens = BATCH * (TOKENS - 1)
    assert frame.layers.tolist() == list(range(LAYERS)) and frame.top_k == TOP_K
    assert frame.tokens.shape == frame.probs.shape == (LAYERS, EXPERTS)
    assert frame.tokens.sum(axis=1).tolist() == [tokens * TOP_K] * LAYERS
    assert frame.dropped.tolist() == [0] * LAYERS
    for layer, logits in enumerate(seen):
        counts, probs = expected(logits, logits.topk(TOP_K, dim=-1).indices)
        assert frame.tokens[layer].tolist() == counts.tolist()
        np.testing.assert_allclose(frame.probs[layer], probs, rtol=1e-5)
    lens.close()


def test_mixtral_counts_match_the_models_own_router_logits() -> None:
    model = tiny_mixtral()
    routers = find_routers(find_blocks(model))
    assert len(routers) == LAYERS
    assert all((s.experts, s.top_k) == (EXPERTS, TOP_K) for s in routers)
    lens = MoeRoutingLens(routers)
    x = ids(128)
    outputs: list[Any] = []

    def step() -> None:
        out = model(input_ids=x, labels=x, output_router_logits=True)
        out.loss.backward()
        outputs.append(out)

    frame = measure(lens, step)
    logits = outputs[0].router_logits
    assert len(logits) == LAYERS
    assert frame.tokens.sum(axis=1).tolist() == [BATCH * TOKENS * TOP_K] * LAYERS
    for layer, layer_logits in enumerate(logits):
        probs = torch.softmax(layer_logits.detach().float(), dim=-1)
        counts, mean_probs = expected(layer_logits.detach(), probs.topk(TOP_K, dim=-1).indices)
        assert frame.tokens[layer].tolist() == counts.tolist()
        np.testing.assert_allclose(frame.probs[layer], mean_probs, rtol=1e-5)
    lens.close()


def test_activation_checkpointing_counts_each_router_once_per_step() -> None:
    model = tiny_mixtral()
    enable = getattr(model, "activation_checkpointing_enable", None)  # transformers >= 5.x
    (enable or model.gradient_checkpointing_enable)()
    lens = MoeRoutingLens.for_blocks(find_blocks(model))
    assert lens is not None
    calls: list[int] = []
    lens.routers[0].router.register_forward_hook(lambda m, a, out: calls.append(1))
    x = ids(128)
    frame = measure(lens, lambda: model(input_ids=x, labels=x).loss.backward())
    assert len(calls) == 2  # the forward pass, then its re-run in backward
    assert frame.tokens.sum(axis=1).tolist() == [BATCH * TOKENS * TOP_K] * LAYERS
    lens.close()


def test_capacity_limit_drops_the_assignments_beyond_it() -> None:
    model = demo_moe(capacity=0.5)
    lens = MoeRoutingLens.for_blocks(find_blocks(model))
    assert lens is not None
    seen = router_logits(model)
    frame = measure(lens, lambda: demo_step(model))
    tokens = BATCH * (TOKENS - 1)
    capacity = math.ceil(0.5 * tokens * TOP_K / EXPERTS)
    for layer, logits in enumerate(seen):
        counts, _ = expected(logits, logits.topk(TOP_K, dim=-1).indices)
        assert frame.tokens[layer].tolist() == counts.tolist()  # chosen, kept or not
        assert frame.dropped[layer] == np.maximum(counts - capacity, 0).sum() > 0
    lens.close()


def test_unmeasured_steps_count_nothing() -> None:
    model = demo_moe()
    lens = MoeRoutingLens.for_blocks(find_blocks(model))
    assert lens is not None
    lens.begin(0, False)
    demo_step(model, seed=1)
    assert lens.finish() is None
    seen = router_logits(model)
    frame = measure(lens, lambda: demo_step(model, seed=2), step=1)
    assert frame.tokens.sum() == LAYERS * BATCH * (TOKENS - 1) * TOP_K  # step 1's tokens only
    counts, _ = expected(seen[0], seen[0].topk(TOP_K, dim=-1).indices)
    assert frame.tokens[0].tolist() == counts.tolist()
    lens.begin(2, False)
    demo_step(model, seed=3)
    assert lens.finish() is None
    lens.close()


def test_a_full_ring_skips_the_step_instead_of_waiting() -> None:
    model = demo_moe()
    lens = MoeRoutingLens.for_blocks(find_blocks(model))
    assert lens is not None
    held = []
    for step in range(5):
        lens.begin(step, True)
        with torch.no_grad():
            model(ids(256, step))
        held.append(lens.finish())
    assert all(c is not None for c in held[:4]) and held[4] is None and lens.skipped == 1
    for capture in held[:4]:
        assert capture is not None
        capture.release()
    lens.begin(5, True)
    with torch.no_grad():
        model(ids(256))
    assert lens.finish() is not None


def test_closed_lens_hooks_nothing() -> None:
    model = demo_moe()
    lens = MoeRoutingLens.for_blocks(find_blocks(model))
    assert lens is not None
    lens.close()
    lens.begin(0, True)
    with torch.no_grad():
        model(ids(256))
    assert lens.finish() is None


def test_routers_of_each_known_shape_are_found() -> None:
    class Transformers4Block(nn.Module):  # Mixtral / Qwen2-MoE in transformers 4
        def __init__(self) -> None:
            super().__init__()
            self.top_k, self.num_experts = 2, 8
            self.gate = nn.Linear(16, 8, bias=False)
            self.shared_expert_gate = nn.Linear(16, 1, bias=False)

    class Router(nn.Module):  # transformers 5's …TopKRouter
        def __init__(self) -> None:
            super().__init__()
            self.top_k = 3
            self.weight = nn.Parameter(torch.zeros(6, 16))

    class Transformers5Block(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.gate = Router()

    class Layer(nn.Module):
        def __init__(self, mlp: nn.Module) -> None:
            super().__init__()
            self.mlp = mlp

    dense = Layer(nn.Sequential(nn.Linear(16, 32), nn.GELU(), nn.Linear(32, 16)))
    blocks = [
        ("layers.0", Layer(Transformers4Block())),
        ("layers.1", dense),
        ("layers.2", Layer(Transformers5Block())),
    ]
    found = [(s.layer, s.name, s.experts, s.top_k, s.choice) for s in find_routers(blocks)]
    assert found == [
        (0, "layers.0.mlp.gate", 8, 2, Choice.TOP_PROBS),
        (2, "layers.2.mlp.gate", 6, 3, Choice.INDICES),
    ]
    assert MoeRoutingLens.for_blocks([("layers.1", dense)]) is None


def routing_frames(server: Any) -> list[tuple[int, int, MoeRouting]]:
    return [(s, f, m) for s, f, m in server.messages if isinstance(m, MoeRouting)]


def test_probe_sends_routing_with_each_measured_step_and_none_while_paused(server) -> None:
    model = demo_moe()
    seen = router_logits(model)
    probe = synapse_probe.attach(model, server=server, rate_hz=EVERY_STEP, attention=False)
    expected_counts = {}
    for step in range(4):
        if step == 2:
            probe.set_control(replace(probe.control, paused=True))
        seen.clear()
        probe.step(step)
        demo_step(model, seed=step)
        expected_counts[step] = [
            expected(logits, logits.topk(TOP_K, dim=-1).indices)[0].tolist() for logits in seen
        ]
    probe.close()
    frames = routing_frames(server)
    assert [step for step, _, _ in frames] == [0, 1]  # steps 2 and 3 were not measured
    for step, _, frame in frames:
        assert frame.tokens.tolist() == expected_counts[step]
    assert server.end_of_step_flags() == [0, 1]  # one END_OF_STEP: sent with the step's frames


def test_routing_false_or_a_dense_model_sends_no_routing(server) -> None:
    model = demo_moe()
    with synapse_probe.attach(model, server=server, rate_hz=EVERY_STEP, routing=False) as probe:
        for step in range(2):
            probe.step(step)
            demo_step(model, seed=step)
    dense = DemoForCausalLM(preset("tiny", n_layers=LAYERS))
    with synapse_probe.attach(dense, server=server, rate_hz=EVERY_STEP) as probe:
        probe.step(2)
        x = ids(256)
        dense.loss(x[:, :-1], x[:, 1:]).backward()
    assert server.steps() == [0, 1, 2] and routing_frames(server) == []


def test_routing_reaches_a_client_over_tcp_with_the_moe_capability() -> None:
    client_module = pytest.importorskip("synapse_native.client")
    model = demo_moe()
    probe = synapse_probe.attach(model, port=0, rate_hz=1000.0, attention=False)
    try:
        host, port = probe.address
        with client_module.StreamClient.connect(host, port) as client:
            hello = client.hello.message
            assert isinstance(hello, Hello) and hello.capabilities & Capability.MOE
            client.wait_for(MsgType.MODEL_META, timeout=5)
            frame = None
            deadline = time.monotonic() + 20
            while frame is None and time.monotonic() < deadline:
                with torch.no_grad():
                    model(ids(256))
                time.sleep(0.01)  # the rate limit is 1000 Hz: each step is measured
                frame = next(
                    (
                        f.message
                        for f in client.frames(timeout=0.05)
                        if isinstance(f.message, MoeRouting)
                    ),
                    None,
                )
            assert frame is not None
            assert frame.layers.tolist() == list(range(LAYERS)) and frame.top_k == TOP_K
            assert frame.tokens.sum(axis=1).tolist() == [BATCH * TOKENS * TOP_K] * LAYERS
            np.testing.assert_allclose(frame.probs.sum(axis=1), 1.0, rtol=1e-5)
    finally:
        probe.close()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_routing_leaves_the_device_without_a_sync() -> None:
    model = demo_moe().cuda()
    lens = MoeRoutingLens.for_blocks(find_blocks(model))
    assert lens is not None
    seen = router_logits(model)
    x = ids(256).cuda()
    with torch.no_grad():
        model(x)  # warm-up: allocations, kernels
    for step in range(6):
        seen.clear()
        torch.cuda.synchronize()
        torch.cuda.set_sync_debug_mode("error")
        try:
            lens.begin(step, True)
            for layer in model.model.layers:  # the demo's own dispatch syncs: run routers only
                layer.mlp.router(torch.randn(BATCH * TOKENS, 64, device="cuda"))
            capture = lens.finish()
        finally:
            torch.cuda.set_sync_debug_mode(0)
        assert capture is not None
        capture.wait()
        frame = capture.messages()[0]
        capture.release()
        for layer, logits in enumerate(seen):
            counts, probs = expected(logits.cpu(), logits.topk(TOP_K, dim=-1).indices.cpu())
            assert frame.tokens[layer].tolist() == counts.tolist()
            np.testing.assert_allclose(frame.probs[layer], probs, rtol=1e-5)
    lens.close()
