"""``synapse sim``: head statistics, attention patterns, residual norms and MoE routing."""

from __future__ import annotations

import re
import subprocess
import sys
import threading
from collections.abc import Iterator

import numpy as np
import pytest

from synapse_desktop import cli
from synapse_native.client import StreamClient
from synapse_native.protocol import (
    AttentionPattern,
    Capability,
    Frame,
    HeadStats,
    ModelMeta,
    MoeRouting,
    MsgType,
    ResidualTokens,
    SiteKind,
)
from synapse_serve.sim.attention import HEAD_KINDS, PATTERN_LAYERS, TOKENS, SimAttention
from synapse_serve.sim.model import N_HEADS
from synapse_serve.sim.routing import STARVE_FROM, STARVED_AT, SimRouter
from synapse_serve.sim.simulator import TOKENS_PER_STEP, SimOptions, Simulator

TIMEOUT = 10.0


@pytest.fixture
def moe_sim() -> Iterator[Simulator]:
    simulator = Simulator(SimOptions(port=0, layers=6, announce=False, moe=8))
    simulator.start()
    yield simulator
    simulator.close()


def step_frames(client: StreamClient) -> list[Frame]:
    """Every frame of the next step, up to the one flagged END_OF_STEP."""
    frames: list[Frame] = []
    while not frames or not frames[-1].header.end_of_step:
        frame = client.next_frame(TIMEOUT)
        assert frame is not None
        if frame.header.msg_type not in (MsgType.HELLO, MsgType.CONTROL_ACK):
            frames.append(frame)
    return frames


def by_type(frames: list[Frame], msg_type: MsgType) -> list[Frame]:
    return [f for f in frames if f.header.msg_type == msg_type]


def test_frames_decode_and_match_the_model_topology(moe_sim: Simulator) -> None:
    host, port = moe_sim.server.address
    with StreamClient.connect(host, port, timeout=TIMEOUT) as client:
        hello = client.hello.message
        assert hello.capabilities & Capability.ATTENTION and hello.capabilities & Capability.MOE
        assert hello.capabilities & Capability.RESIDUAL
        meta = client.wait_for(MsgType.MODEL_META, TIMEOUT).message
        assert isinstance(meta, ModelMeta) and "8 experts" in meta.model_name
        client.wait_for(MsgType.CONTROL_ACK, TIMEOUT)
        heads = {s.grid_rows for s in meta.sites if s.kind == SiteKind.ATTN}
        assert heads == {N_HEADS}
        for _ in range(2):
            moe_sim.tick()
        first, second = step_frames(client), step_frames(client)
    assert first[-1].header.msg_type == MsgType.MOE_ROUTING  # routing closes the step
    (stats_frame,) = by_type(first, MsgType.HEAD_STATS)
    stats = stats_frame.message
    assert isinstance(stats, HeadStats) and stats_frame.header.step == 0
    assert stats.layers.tolist() == list(range(meta.n_layers)) and stats.tokens == len(TOKENS)
    assert stats.entropy.shape == stats.max_logit.shape == (meta.n_layers, N_HEADS)
    assert (stats.entropy >= 0).all() and (stats.entropy <= np.log(len(TOKENS))).all()
    (pattern_frame,) = by_type(first, MsgType.ATTENTION)
    pattern = pattern_frame.message
    assert isinstance(pattern, AttentionPattern) and pattern.tokens == TOKENS
    assert pattern.layers.tolist() == np.repeat(np.arange(PATTERN_LAYERS), N_HEADS).tolist()
    assert pattern.heads.tolist() == list(range(N_HEADS)) * PATTERN_LAYERS
    n_tokens = len(TOKENS)
    assert pattern.weights.shape == (PATTERN_LAYERS * N_HEADS, n_tokens, n_tokens)
    weights = pattern.weights.astype(np.float32)
    assert (np.triu(weights, 1) == 0).all()  # causal
    np.testing.assert_allclose(weights.sum(axis=-1), 1.0, atol=0.01)
    (residual_frame,) = by_type(first, MsgType.RESIDUAL)
    residual = residual_frame.message
    assert isinstance(residual, ResidualTokens)
    assert residual.norms.shape == (meta.n_layers, n_tokens)
    (routing_frame,) = by_type(first, MsgType.MOE_ROUTING)
    routing = routing_frame.message
    assert isinstance(routing, MoeRouting) and routing.top_k == 2
    assert routing.tokens.shape == routing.probs.shape == (meta.n_layers, 8)
    assigned = routing.tokens.sum(axis=1, dtype=np.int64) + routing.dropped
    assert (assigned == 2 * TOKENS_PER_STEP).all()
    np.testing.assert_allclose(routing.probs.sum(axis=1), 1.0, rtol=1e-5)
    # Head statistics and routing every step; patterns and residual norms every tenth.
    kinds = [f.header.msg_type for f in second]
    assert MsgType.HEAD_STATS in kinds and MsgType.MOE_ROUTING in kinds
    assert MsgType.ATTENTION not in kinds and MsgType.RESIDUAL not in kinds


def test_a_dense_sim_sends_no_routing_and_does_not_announce_moe() -> None:
    simulator = Simulator(SimOptions(port=0, layers=2, announce=False))
    host, port = simulator.start()
    try:
        with StreamClient.connect(host, port, timeout=TIMEOUT) as client:
            assert not client.hello.message.capabilities & Capability.MOE
            client.wait_for(MsgType.CONTROL_ACK, TIMEOUT)
            simulator.tick()
            kinds = {f.header.msg_type for f in step_frames(client)}
        assert {MsgType.HEAD_STATS, MsgType.ATTENTION, MsgType.RESIDUAL} <= kinds
        assert MsgType.MOE_ROUTING not in kinds
    finally:
        simulator.close()


def test_heads_sharpen_over_training_and_max_logits_grow() -> None:
    attention = SimAttention(8, seed=1)
    early = attention.head_stats(0)
    late = attention.head_stats(3000)
    assert late.entropy.mean() < 0.6 * early.entropy.mean()
    assert late.max_logit.max() > 2 * early.max_logit.max()
    assert (late.entropy < 0.1).sum() >= 8  # some heads are sharp
    assert (late.entropy > 1.5).sum() >= 8  # and some broad
    assert set(attention.kinds.ravel().tolist()) == set(range(len(HEAD_KINDS)))


def test_an_activation_spike_shows_in_one_head() -> None:
    attention = SimAttention(8, seed=1)
    quiet = attention.head_stats(500)
    spiking = attention.head_stats(500, spike=(3, 12.0))
    jump = spiking.max_logit / quiet.max_logit
    assert jump.max() > 4 and np.unravel_index(jump.argmax(), jump.shape)[0] == 3
    assert (jump > 1.5).sum() == 1


def test_patterns_show_their_head_kinds_and_take_the_layers_in_turn() -> None:
    attention = SimAttention(6, seed=2)
    layers = [list(dict.fromkeys(attention.pattern(1000).layers.tolist())) for _ in range(3)]
    assert layers == [[0, 1, 2, 3], [4, 5, 0, 1], [2, 3, 4, 5]]
    pattern = attention.pattern(1000)
    weights = pattern.weights.astype(np.float32)
    kinds = attention.kinds[pattern.layers, pattern.heads]
    rows = np.arange(1, len(TOKENS))
    sink = weights[kinds == HEAD_KINDS.index("sink")][:, 1:, 0]
    previous = weights[kinds == HEAD_KINDS.index("previous")][:, rows, rows - 1]
    diagonal = weights[kinds == HEAD_KINDS.index("diagonal")][:, rows, rows]
    for share in (sink, previous, diagonal):
        assert share.size and share.mean() > 0.6


def test_residual_norms_grow_with_depth_with_a_huge_first_token() -> None:
    norms = SimAttention(8, seed=0).residual(100).norms
    typical = np.median(norms[:, 1:], axis=1)
    assert typical[-1] > 5 * typical[0]
    assert (norms[2:, 0] > 10 * typical[2:]).all() and norms[0, 0] < 3 * typical[0]


def test_one_expert_starves_to_zero_tokens_and_stays_dead() -> None:
    router = SimRouter(4, 8, tokens=4096, seed=5)
    counts = np.array([router.routing(step).tokens for step in range(STARVED_AT + 50)])
    starving = counts[:, router.starving[0], router.starving[1]]
    assert (starving[:STARVE_FROM] > 0).all()
    assert starving[STARVE_FROM + 50] < 0.7 * starving[:STARVE_FROM].mean()
    assert (starving[STARVED_AT:] == 0).all() and (starving[: STARVED_AT - 40] > 0).all()
    others = counts.copy()
    others[:, router.starving[0], router.starving[1]] = 1
    assert (others > 0).all()


def test_moe_option_from_the_command_line() -> None:
    base = [sys.executable, "-m", "synapse_desktop", "sim", "--layers", "2", "--port", "0"]
    done = subprocess.run(
        [*base, "--moe", "8", "--steps", "3", "--fps", "100"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0 and "stopped after 3 steps" in done.stderr
    refused = subprocess.run(
        [*base, "--moe", "1"], capture_output=True, text=True, timeout=60, check=False
    )
    assert refused.returncode == 2 and "--moe takes 2 to 1024 experts, got 1" in refused.stderr


def test_tail_prints_the_attention_and_routing_frames(capsys: pytest.CaptureFixture[str]) -> None:
    simulator = Simulator(SimOptions(port=0, layers=2, announce=False, fps=50.0, moe=4))
    host, port = simulator.start()
    stop = threading.Event()
    runner = threading.Thread(target=simulator.run, args=(stop,))
    runner.start()
    try:
        # 11 frames a step: with 150, the tail sees a tenth step (patterns, residual norms).
        assert cli.main(["tail", f"{host}:{port}", "--count", "150"]) == 0
    finally:
        stop.set()
        runner.join(TIMEOUT)
        simulator.close()
    lines = capsys.readouterr().out.splitlines()
    first = {line.split()[0]: line for line in reversed(lines)}
    assert re.search(
        r"2 layers x 32 heads, entropy [\d.e+-]+-[\d.e+-]+ nats, max logit [\d.]+$",
        first["HEAD_STATS"],
    )
    assert first["ATTENTION"].endswith(f"64 pairs x {len(TOKENS)} tokens, layers 0-1, row 0")
    assert re.search(
        rf"2 layers x {len(TOKENS)} tokens, norm [\d.e+]+-[\d.e+]+$", first["RESIDUAL"]
    )
    assert re.search(
        r"2 layers x 4 experts, top-2, max CV [\d.]+, dropped \d+ END$", first["MOE_ROUTING"]
    )
