"""Block and site discovery on tiny models built here (no downloads, no ``transformers``)."""

from __future__ import annotations

import pytest
import torch
from probe_models import Block, gpt2_like, llama_like, neox_like
from torch import nn

from synapse_probe.discovery import DiscoveryError, find_blocks, find_sites, guess_width


def names(model: nn.Module, per_block: str = "attn+mlp+residual", layers=None) -> list[str]:
    return [s.name for s in find_sites(model, find_blocks(model, layers), per_block)]


@pytest.mark.parametrize(
    ("make", "blocks", "attn", "mlp"),
    [
        (llama_like, "model.layers", "self_attn", "mlp"),
        (gpt2_like, "transformer.h", "attn", "mlp"),
        (neox_like, "gpt_neox.layers", "attention", "mlp"),
    ],
)
def test_hugging_face_look_alikes(make, blocks: str, attn: str, mlp: str) -> None:
    model = make(n_layers=3)
    found = find_blocks(model)
    assert [name for name, _ in found] == [f"{blocks}.{i}" for i in range(3)]
    assert names(model)[:3] == [f"{blocks}.0.{attn}", f"{blocks}.0.{mlp}", f"{blocks}.0"]
    sites = find_sites(model, found, "attn+mlp+residual")
    assert [(s.layer, s.kind) for s in sites[3:6]] == [(1, "attn"), (1, "mlp"), (1, "residual")]


def test_per_block_presets_choose_the_sites() -> None:
    model = llama_like(n_layers=2)
    assert names(model, "residual") == ["model.layers.0", "model.layers.1"]
    assert names(model, "attn+mlp") == [
        "model.layers.0.self_attn",
        "model.layers.0.mlp",
        "model.layers.1.self_attn",
        "model.layers.1.mlp",
    ]
    with pytest.raises(ValueError, match="per_block"):
        names(model, "everything")


def test_torch_transformer_encoder_uses_self_attn_and_linear2() -> None:
    layer = nn.TransformerEncoderLayer(16, 2, 32, batch_first=True)
    model = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
    assert names(model)[:3] == ["layers.0.self_attn", "layers.0.linear2", "layers.0"]


def test_torch_transformer_takes_encoder_then_decoder_layers() -> None:
    model = nn.Transformer(16, 2, 2, 1, 32, batch_first=True)
    blocks = [name for name, _ in find_blocks(model)]
    assert blocks == ["encoder.layers.0", "encoder.layers.1", "decoder.layers.0"]
    assert "decoder.layers.0.self_attn" in names(model)


def test_any_module_list_of_blocks_is_found() -> None:
    class Custom(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.heads = nn.ModuleList([nn.Linear(2, 2)])  # small: not the blocks
            self.stack = nn.ModuleList(Block(16, "mixer", "ffn") for _ in range(2))

    assert names(Custom()) == [
        "stack.0.mixer",
        "stack.0.ffn",
        "stack.0",
        "stack.1.mixer",
        "stack.1.ffn",
        "stack.1",
    ]


def test_blocks_without_known_children_keep_their_residual_site() -> None:
    model = nn.Sequential(nn.ModuleList([nn.Linear(4, 4), nn.Linear(4, 4)]))
    assert names(model) == ["0.0", "0.1"]


def test_layers_option_overrides_discovery() -> None:
    model = llama_like(n_layers=3)
    layers = model.model.layers
    assert [n for n, _ in find_blocks(model, "model.layers")] == [
        f"model.layers.{i}" for i in range(3)
    ]
    assert [n for n, _ in find_blocks(model, layers)] == [f"model.layers.{i}" for i in range(3)]
    assert [n for n, _ in find_blocks(model, [layers[2], layers[0]])] == [
        "model.layers.2",
        "model.layers.0",
    ]
    assert [n for n, _ in find_blocks(model, "model.layers.1")] == ["model.layers.1"]
    with pytest.raises(DiscoveryError, match="no such submodule"):
        find_blocks(model, "model.blocks")
    with pytest.raises(DiscoveryError, match="not part of the model"):
        find_blocks(model, [nn.Linear(2, 2)])


def test_model_without_blocks_asks_for_layers() -> None:
    with pytest.raises(DiscoveryError, match="layers="):
        find_blocks(nn.Linear(3, 3))


def test_names_come_from_the_model_under_compile_and_ddp_style_wrappers() -> None:
    model = llama_like()
    compiled = torch.compile(model, backend="eager")
    assert names(compiled) == names(model)

    class DataParallel(nn.Module):  # the wrapper's name and its .module are what count
        def __init__(self, module: nn.Module) -> None:
            super().__init__()
            self.module = module

    assert names(DataParallel(model)) == names(model)


def test_width_guesses() -> None:
    model = llama_like(d=16)
    block = model.model.layers[0]
    assert guess_width(block.self_attn) == 16
    assert guess_width(block.mlp) == 16
    assert guess_width(nn.MultiheadAttention(8, 2)) == 8
    assert guess_width(nn.ReLU()) == 0
