"""``attach`` on Hugging Face transformers models: tiny random configs, nothing downloaded."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
import torch
from probe_reference import summary
from torch import nn

import synapse_probe
from synapse_native.protocol import SiteKind
from synapse_probe.discovery import guess_width

transformers = pytest.importorskip("transformers")  # in the test extra: CI runs these

HIDDEN, FFN, LAYERS, HEADS, KV_HEADS, VOCAB = 64, 128, 2, 4, 2, 128
BATCH, TOKENS = 2, 12
COMPARED = ("mean", "std", "rms", "min", "max", "mean_abs", "frac_above")


def tiny_config(cls_name: str) -> Any:
    """A random config of ``cls_name`` small enough for a CPU test."""
    llama_like = {
        "hidden_size": HIDDEN,
        "intermediate_size": FFN,
        "num_hidden_layers": LAYERS,
        "num_attention_heads": HEADS,
        "num_key_value_heads": KV_HEADS,
        "vocab_size": VOCAB,
        "max_position_embeddings": 64,
    }
    if cls_name == "GPT2LMHeadModel":
        return transformers.GPT2Config(
            n_embd=HIDDEN,
            n_inner=FFN,
            n_layer=LAYERS,
            n_head=HEADS,
            vocab_size=VOCAB,
            n_positions=64,
            bos_token_id=0,
            eos_token_id=0,
        )
    if cls_name == "GPTNeoXForCausalLM":
        del llama_like["num_key_value_heads"]
        return transformers.GPTNeoXConfig(**llama_like, bos_token_id=0, eos_token_id=0)
    if cls_name == "MixtralForCausalLM":
        return transformers.MixtralConfig(**llama_like, num_local_experts=4, num_experts_per_tok=2)
    config_name = cls_name.removesuffix("ForCausalLM") + "Config"
    return getattr(transformers, config_name)(**llama_like)


def tiny_model(cls_name: str, attn: str | None = None) -> nn.Module:
    torch.manual_seed(0)
    config = tiny_config(cls_name)
    if attn is not None:
        config._attn_implementation = attn
    model: nn.Module = getattr(transformers, cls_name)(config)
    return model.train()


# (class, where its blocks are, the attention child, the MLP child: None = Mixtral's MoE block)
MODELS = [
    ("LlamaForCausalLM", "model.layers", "self_attn", "mlp"),
    ("MistralForCausalLM", "model.layers", "self_attn", "mlp"),
    ("Qwen2ForCausalLM", "model.layers", "self_attn", "mlp"),
    ("GPT2LMHeadModel", "transformer.h", "attn", "mlp"),
    ("GPTNeoXForCausalLM", "gpt_neox.layers", "attention", "mlp"),
    ("MixtralForCausalLM", "model.layers", "self_attn", None),
]


def expected_sites(model: nn.Module, blocks: str, attn: str, mlp: str | None) -> list[tuple]:
    """(name, kind) of every site, from the model's own module names."""
    if mlp is None:  # transformers 4 calls Mixtral's MoE block `block_sparse_moe`, 5 `mlp`
        first = model.get_submodule(f"{blocks}.0")
        mlp = "block_sparse_moe" if hasattr(first, "block_sparse_moe") else "mlp"
        assert type(getattr(first, mlp)).__name__.endswith("SparseMoeBlock")
    sites = []
    for i in range(LAYERS):
        block = f"{blocks}.{i}"
        sites += [(f"{block}.{attn}", SiteKind.ATTN), (f"{block}.{mlp}", SiteKind.MLP)]
        sites.append((block, SiteKind.RESIDUAL))
    return sites


def record_outputs(model: nn.Module, names: list[str]) -> dict[str, dict[str, torch.Tensor]]:
    """Forward hooks of the test's own: each module's output (the first item of a tuple) and the
    gradient that reaches it, as float64 copies."""
    seen: dict[str, dict[str, torch.Tensor]] = {name: {} for name in names}

    def hook(name: str) -> Any:
        def on_output(module: nn.Module, args: Any, output: Any) -> None:
            out = output[0] if isinstance(output, tuple) else output
            if "act" in seen[name]:
                return
            seen[name]["act"] = out.detach().double().clone()
            out.register_hook(lambda g: seen[name].__setitem__("grad", g.detach().double()))

        return on_output

    for name in names:
        model.get_submodule(name).register_forward_hook(hook(name))
    return seen


def train_step(model: nn.Module, probe: Any, step: int, seed: int = 1) -> None:
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, VOCAB, (BATCH, TOKENS), generator=generator)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    probe.step(step)
    loss = model(input_ids=ids, labels=ids).loss
    loss.backward()
    optimizer.step()
    optimizer.zero_grad()
    assert probe.flush()


def assert_matches(record: np.void, values: torch.Tensor, threshold: float) -> None:
    expected = summary(values.numpy(), threshold)
    assert record["count"] == values.numel()
    scale = float(values.abs().max())
    for field in COMPARED:
        np.testing.assert_allclose(
            record[field], expected[field], rtol=1e-4, atol=1e-6 * scale, err_msg=field
        )
    np.testing.assert_allclose(record["hist"], expected["hist"], atol=1e-6)


@pytest.mark.parametrize(("cls_name", "blocks", "attn", "mlp"), MODELS, ids=[m[0] for m in MODELS])
def test_attach_finds_every_site_and_streams_its_true_statistics(
    server, cls_name: str, blocks: str, attn: str, mlp: str | None
) -> None:
    model = tiny_model(cls_name)
    sites = expected_sites(model, blocks, attn, mlp)
    names = [name for name, _ in sites]
    seen = record_outputs(model, names)
    probe = synapse_probe.attach(
        model, server=server, rate_hz=math.inf, grads=True, threshold_mode="absolute"
    )
    try:
        assert [(s.name, s.kind) for s in probe.sites] == sites
        meta = server.metas[0]
        assert meta.model_name == cls_name and meta.n_layers == LAYERS
        assert [s.neurons for s in meta.sites] == [HIDDEN] * len(sites)  # right before any step

        train_step(model, probe, step=5)
    finally:
        probe.close()

    assert [s.neurons for s in server.metas[-1].sites] == [HIDDEN] * len(sites)
    [(step, records)] = server.summaries()
    assert step == 5
    activations = records[(records["flags"] & 1) == 0]
    gradients = records[(records["flags"] & 1) == 1]
    assert activations["site_id"].tolist() == list(range(len(sites)))
    assert sorted(gradients["site_id"].tolist()) == list(range(len(sites)))
    threshold = probe.control.threshold
    for record in activations:
        assert_matches(record, seen[names[record["site_id"]]]["act"], threshold)
    for record in gradients:
        assert_matches(record, seen[names[record["site_id"]]]["grad"], threshold)
    [(_, norms)] = server.grad_norms()
    assert len(norms) == LAYERS and np.isfinite(norms).all() and (norms > 0).all()


def test_attention_sites_see_the_attention_output_under_sdpa_and_eager(server) -> None:
    """Eager attention returns (output, weights), SDPA (output, None): both measure the output."""
    streamed = {}
    for attn in ("eager", "sdpa"):
        model = tiny_model("LlamaForCausalLM", attn=attn)
        assert model.config._attn_implementation == attn
        seen = record_outputs(model, ["model.layers.0.self_attn"])
        before = len(server.summaries())
        with synapse_probe.attach(
            model, server=server, rate_hz=math.inf, threshold_mode="absolute"
        ) as probe:
            train_step(model, probe, step=0)
        records = server.summaries()[before][1]
        attn_record = records[records["site_id"] == 0][0]
        site = probe.sites[0]
        assert (site.name, site.neurons) == ("model.layers.0.self_attn", HIDDEN)
        assert_matches(attn_record, seen[site.name]["act"], probe.control.threshold)
        streamed[attn] = attn_record
    for field in COMPARED:  # same weights, same tokens: the same attention output
        np.testing.assert_allclose(streamed["eager"][field], streamed["sdpa"][field], rtol=1e-4)


def test_width_guess_of_a_transformers_4_mixtral_moe_block() -> None:
    """transformers 4's Mixtral MoE block registers its experts' Linears as w1, w2, w3: the
    block's width is the router's input, not the last Linear's output."""

    class Expert(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w1 = nn.Linear(HIDDEN, FFN)
            self.w2 = nn.Linear(FFN, HIDDEN)
            self.w3 = nn.Linear(HIDDEN, FFN)

    class SparseMoeBlock(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.gate = nn.Linear(HIDDEN, 4)
            self.experts = nn.ModuleList(Expert() for _ in range(4))

    assert guess_width(SparseMoeBlock()) == HIDDEN
