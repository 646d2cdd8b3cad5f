"""Find a model's transformer blocks and the attention / MLP submodules inside each block.

Discovery only reads the module tree: it registers nothing and runs no forward pass.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from torch import nn

# Where common model families keep their blocks, tried in order before the generic search.
KNOWN_BLOCK_PATHS = (
    "model.layers",  # Llama, Mistral, Qwen2, Phi, Gemma (…ForCausalLM)
    "layers",  # the same families without the LM head, GPT-NeoX base model
    "transformer.h",  # GPT-2, GPT-J, Falcon, Bloom
    "h",
    "gpt_neox.layers",  # GPT-NeoX, Pythia
    "model.decoder.layers",  # OPT, BART-style decoders
    "transformer.blocks",  # MPT
)
ATTENTION_NAMES = ("self_attn", "attn", "attention", "self_attention", "mixer")
MLP_NAMES = ("mlp", "feed_forward", "ffn", "block_sparse_moe", "moe", "ff", "feedforward")
# nn.TransformerEncoderLayer / DecoderLayer keep the MLP as loose modules; linear2 is its output.
TORCH_LAYER_MLP = "linear2"

PER_BLOCK = {
    "attn+mlp": ("attn", "mlp"),
    "attn+mlp+residual": ("attn", "mlp", "residual"),
    "residual": ("residual",),
}


class DiscoveryError(ValueError):
    """The blocks could not be found, or the ``layers=`` option names something else."""


@dataclass(frozen=True)
class SiteSpec:
    """A point to hook: which block, what kind, the module whose output it is, and its name."""

    layer: int
    kind: str  # "attn" | "mlp" | "residual"
    name: str
    module: nn.Module


def unwrap(model: nn.Module) -> nn.Module:
    """The user's own module under torch.compile's and (Distributed)DataParallel's wrappers."""
    while True:
        inner = getattr(model, "_orig_mod", None)
        if inner is None and type(model).__name__ in ("DistributedDataParallel", "DataParallel"):
            inner = getattr(model, "module", None)
        if not isinstance(inner, nn.Module):
            return model
        model = inner


def find_blocks(
    model: nn.Module, layers: str | nn.ModuleList | Sequence[nn.Module] | None = None
) -> list[tuple[str, nn.Module]]:
    """The blocks in forward order, each with its qualified name inside ``unwrap(model)``."""
    root = unwrap(model)
    names = {id(module): name for name, module in root.named_modules()}
    if layers is not None:
        return _chosen_blocks(root, names, layers)
    for path in KNOWN_BLOCK_PATHS:
        found = _submodule(root, path)
        if isinstance(found, nn.ModuleList) and len(found) > 0:
            return _named(found, names)
    torch_layers = [
        block
        for module in root.modules()
        if isinstance(module, nn.ModuleList)
        for block in module
        if isinstance(block, (nn.TransformerEncoderLayer, nn.TransformerDecoderLayer))
    ]
    if torch_layers:
        return _named(torch_layers, names)
    best = _largest_uniform_list(root)
    if best is None:
        raise DiscoveryError(
            f"no list of transformer blocks found in {type(root).__name__}; "
            "pass layers= (an nn.ModuleList, a list of modules or a dotted path)"
        )
    return _named(best, names)


def find_sites(
    model: nn.Module, blocks: Sequence[tuple[str, nn.Module]], per_block: str
) -> list[SiteSpec]:
    """The sites of every block, in the order layer, then attn / mlp / residual."""
    if per_block not in PER_BLOCK:
        raise ValueError(f"per_block must be one of {sorted(PER_BLOCK)}, got {per_block!r}")
    kinds = PER_BLOCK[per_block]
    sites: list[SiteSpec] = []
    for layer, (block_name, block) in enumerate(blocks):
        for kind in kinds:
            if kind == "residual":
                sites.append(SiteSpec(layer, kind, block_name, block))
                continue
            found = find_submodule(block, kind)
            if found is not None:
                child_name, child = found
                sites.append(SiteSpec(layer, kind, _join(block_name, child_name), child))
    return sites


def find_submodule(block: nn.Module, kind: str) -> tuple[str, nn.Module] | None:
    """The block's attention (``kind="attn"``) or MLP (``kind="mlp"``) child, by common names."""
    if kind == "attn":
        candidates: Iterable[str] = ATTENTION_NAMES
    elif isinstance(block, (nn.TransformerEncoderLayer, nn.TransformerDecoderLayer)):
        candidates = (TORCH_LAYER_MLP,)
    else:
        candidates = MLP_NAMES
    for name in candidates:
        child = getattr(block, name, None)
        if isinstance(child, nn.Module):
            return name, child
    return None


def guess_width(module: nn.Module) -> int:
    """The output width (neurons) a module most likely produces, or 0 when it cannot be told.

    A lone projection gives its output width. A block, its attention and its MLP write the
    residual stream, so they produce the width they read: the input width of the first projection
    inside. (Their last registered projection need not run last: Mixtral's experts register
    ``w1, w2, w3``.) Used for the first topology message; the probe corrects it from the first
    real output.
    """
    if isinstance(module, nn.MultiheadAttention):
        return int(module.embed_dim)
    if isinstance(module, nn.Linear):
        return int(module.out_features)
    if type(module).__name__ == "Conv1D":  # GPT-2's transposed Linear
        nf = getattr(module, "nf", None)
        return nf if isinstance(nf, int) else 0
    for child in module.modules():
        width = _input_width(child)
        if width:
            return width
    return 0


def _input_width(module: nn.Module) -> int:
    """The width a projection reads, or 0 for a module that is none (norms, activations…)."""
    if isinstance(module, nn.Linear):
        return int(module.in_features)
    if isinstance(module, nn.MultiheadAttention):
        return int(module.embed_dim)
    if type(module).__name__ == "Conv1D":
        nx = getattr(module, "nx", None)
        return nx if isinstance(nx, int) else 0
    # A bare 2-D (out, in) weight: e.g. the router of transformers 5's MoE blocks, whose experts
    # keep fused 3-D weights and no Linear at all.
    weight = module._parameters.get("weight")
    if weight is not None and weight.dim() == 2 and not isinstance(module, nn.Embedding):
        return int(weight.shape[1])
    return 0


def _chosen_blocks(
    root: nn.Module,
    names: dict[int, str],
    layers: str | nn.ModuleList | Sequence[nn.Module],
) -> list[tuple[str, nn.Module]]:
    if isinstance(layers, str):
        found = _submodule(root, layers)
        if found is None:
            raise DiscoveryError(f"layers={layers!r}: no such submodule in {type(root).__name__}")
        blocks: Sequence[nn.Module] = list(found) if isinstance(found, nn.ModuleList) else [found]
    else:
        blocks = list(layers)
    if not blocks or not all(isinstance(b, nn.Module) for b in blocks):
        raise DiscoveryError("layers= must name at least one nn.Module")
    missing = [type(b).__name__ for b in blocks if id(b) not in names]
    if missing:
        raise DiscoveryError(f"layers= holds modules that are not part of the model: {missing}")
    return _named(blocks, names)


def _named(blocks: Iterable[nn.Module], names: dict[int, str]) -> list[tuple[str, nn.Module]]:
    return [(names[id(block)], block) for block in blocks]


def _submodule(root: nn.Module, path: str) -> nn.Module | None:
    try:
        return root.get_submodule(path)
    except AttributeError:
        return None


def _largest_uniform_list(root: nn.Module) -> nn.ModuleList | None:
    """The ModuleList of same-type children that holds the most parameters (ties: the first)."""
    best: nn.ModuleList | None = None
    best_size = 0
    for module in root.modules():
        if not isinstance(module, nn.ModuleList) or len(module) == 0:
            continue
        if len({type(child) for child in module}) != 1:
            continue
        size = sum(p.numel() for p in module.parameters())
        if size > best_size:
            best, best_size = module, size
    return best


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name
