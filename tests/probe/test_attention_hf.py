"""The attention lens on Hugging Face transformers models: the training forward runs SDPA, and
what the lens sends equals a separate eager forward's ``output_attentions`` (weights, entropy),
its softmax inputs (largest logit) and ``output_hidden_states`` (residual norms)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
import torch
from attention_frames import entropy_of, lens_frames
from test_hf_models import LAYERS, VOCAB, tiny_config
from torch import nn

import synapse_probe
from synapse_native.protocol import AttentionPattern, HeadStats, ResidualTokens

transformers = pytest.importorskip("transformers")

BATCH, SEQ, SAMPLED = 2, 16, 12
EVERY_STEP = math.inf
# (class, where its blocks are); Mistral runs with a sliding window shorter than the sample.
MODELS = [
    ("LlamaForCausalLM", "model.layers"),
    ("MistralForCausalLM", "model.layers"),
    ("Qwen2ForCausalLM", "model.layers"),
    ("MixtralForCausalLM", "model.layers"),
    ("GPT2LMHeadModel", "transformer.h"),
    ("GPTNeoXForCausalLM", "gpt_neox.layers"),
]
WINDOW = 5


def build(cls_name: str, attn: str) -> nn.Module:
    config = tiny_config(cls_name)
    for name in ("attn_pdrop", "resid_pdrop", "embd_pdrop", "attention_dropout", "hidden_dropout"):
        if hasattr(config, name):
            setattr(config, name, 0.0)  # the training forward must see what the reference sees
    if cls_name == "MistralForCausalLM":
        config.sliding_window = WINDOW
    config._attn_implementation = attn
    torch.manual_seed(0)
    model: nn.Module = getattr(transformers, cls_name)(config)
    return model


def eager_reference(
    model: nn.Module, cls_name: str, blocks: str, ids: torch.Tensor, monkeypatch: Any
) -> dict[str, list[np.ndarray]]:
    """Attention weights, softmax inputs and block outputs of an eager forward of ``ids``."""
    reference = build(cls_name, "eager").eval()
    reference.load_state_dict(model.state_dict())
    logits: list[torch.Tensor] = []
    softmax = torch.nn.functional.softmax

    def recording_softmax(x: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        if x.dim() == 4 and x.shape[-2:] == (ids.shape[1], ids.shape[1]):
            logits.append(x.detach().double())
        return softmax(x, *args, **kwargs)

    outputs: list[torch.Tensor] = []
    last_block = reference.get_submodule(blocks)[-1]
    handle = last_block.register_forward_hook(
        lambda m, args, out: outputs.append(out[0] if isinstance(out, tuple) else out)
    )
    with monkeypatch.context() as patch, torch.no_grad():
        patch.setattr(torch.nn.functional, "softmax", recording_softmax)
        result = reference(input_ids=ids, output_attentions=True, output_hidden_states=True)
    handle.remove()
    assert len(logits) == LAYERS
    hidden = [*result.hidden_states[1:LAYERS], outputs[0]]  # the last one is after the norm
    return {
        "weights": [a[0].double().numpy() for a in result.attentions],
        "max_logit": [x[0].amax(dim=(-2, -1)).numpy() for x in logits],
        "norms": [torch.linalg.vector_norm(h[0].double(), dim=-1).numpy() for h in hidden],
    }


@pytest.mark.parametrize(("cls_name", "blocks"), MODELS, ids=[m[0] for m in MODELS])
def test_lens_matches_an_eager_forward(server, monkeypatch, cls_name: str, blocks: str) -> None:
    model = build(cls_name, "sdpa").train()
    assert model.config._attn_implementation == "sdpa"  # the lens needs no eager attention
    ids = torch.randint(0, VOCAB, (BATCH, SEQ), generator=torch.Generator().manual_seed(3))
    probe = synapse_probe.attach(
        model, server=server, rate_hz=EVERY_STEP, pattern_hz=EVERY_STEP, sample_tokens=SAMPLED
    )
    try:
        probe.step(0)
        model(input_ids=ids, labels=ids).loss.backward()
        assert probe.flush()
    finally:
        probe.close()
    expected = eager_reference(model, cls_name, blocks, ids[:1, :SAMPLED], monkeypatch)

    [(_, stats)] = lens_frames(server, HeadStats)
    assert stats.layers.tolist() == list(range(LAYERS)) and stats.tokens == SAMPLED
    [(_, pattern)] = lens_frames(server, AttentionPattern)
    heads = stats.entropy.shape[1]
    assert pattern.layers.tolist() == [layer for layer in range(LAYERS) for _ in range(heads)]
    assert pattern.tokens == tuple(str(i) for i in ids[0, :SAMPLED].tolist())
    for p, (layer, head) in enumerate(zip(pattern.layers, pattern.heads, strict=True)):
        weights = expected["weights"][layer][head]
        np.testing.assert_allclose(pattern.weights[p], weights, atol=1e-3)
    for layer in range(LAYERS):
        entropy = entropy_of(expected["weights"][layer])
        np.testing.assert_allclose(stats.entropy[layer], entropy, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(
            stats.max_logit[layer], expected["max_logit"][layer], rtol=1e-4, atol=1e-5
        )
    if cls_name == "MistralForCausalLM":  # keys beyond the window get no weight
        beyond = np.tril(np.ones((SAMPLED, SAMPLED), bool), k=-WINDOW)
        assert (pattern.weights[:, beyond] == 0).all()

    [(_, residual)] = lens_frames(server, ResidualTokens)
    assert residual.layers.tolist() == list(range(LAYERS))
    for layer in range(LAYERS):
        np.testing.assert_allclose(residual.norms[layer], expected["norms"][layer], rtol=1e-5)


def test_gradient_checkpointing_reruns_do_not_change_the_lens(server) -> None:
    """A checkpointed forward re-runs each block in backward: the lens keeps the first run."""
    ids = torch.randint(0, VOCAB, (BATCH, SEQ), generator=torch.Generator().manual_seed(4))
    sent = []
    for checkpointing in (False, True):
        model = build("LlamaForCausalLM", "sdpa").train()
        if checkpointing:  # transformers 5 renamed it; 4 has the old name only
            enable = getattr(model, "activation_checkpointing_enable", None)
            (enable or model.gradient_checkpointing_enable)()
        before = len(server.messages)
        with synapse_probe.attach(model, server=server, rate_hz=EVERY_STEP) as probe:
            probe.step(0)
            model(input_ids=ids, labels=ids).loss.backward()
        stats = [m for _, _, m in server.messages[before:] if isinstance(m, HeadStats)]
        assert len(stats) == 1
        sent.append(stats[0])
    np.testing.assert_allclose(sent[0].entropy, sent[1].entropy, rtol=1e-6)
    np.testing.assert_allclose(sent[0].max_logit, sent[1].max_logit, rtol=1e-6)
