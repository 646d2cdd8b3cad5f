"""Step-time cost of the probe on a small GPT trained on the CPU, next to what users do today.

Four copies of one model (d=256, 6 blocks, T=128, batch 8, AdamW) train side by side, a block of
steps each in turn (the order rotates every round, after a warm-up; ``_overhead.interleave``), so
that machine noise hits every variant alike:

- plain: no instrumentation;
- synapse: the probe with every feature on (``grads=True``) at its default budget (1 % of the
  step: its governor chooses which steps to measure), streaming to a client (another process)
  that reads and decodes every frame;
- every-step: the same probe without a budget (``budget=None``): every step measured, the cost
  the governor spreads out;
- with ``--compare``: item(): forward hooks that read mean / std / min / max with ``.item()``
  (what wandb.watch does), on the same sites as the probe; tensorboard:
  ``SummaryWriter.add_histogram`` on the same sites, every step (skipped when the
  ``tensorboard`` package is not installed).

Prints the median step time of each and its ratio to plain: the median of per-round ratios
(paired, robust to load drifting on a shared machine), the ratio of medians, and the ratio of
total times (which counts the rare measured steps of a governed probe); then the probe's own
count of its cost. The viewers' CPU time is printed too: where torch's threads take every core,
the viewers' decoding slows the step though it is not the probe's; ``--viewer-core`` gives them a
CPU of their own (training runs on the others, one torch thread each), as a viewer on another
machine or a spare core would be. Measured rounds run for about ``--seconds`` (120 s by default).
Run: ``python bench/bench_probe_overhead.py``."""

from __future__ import annotations

import argparse
import copy
import importlib.util
import multiprocessing
import os
import tempfile
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from _overhead import BLOCK, interleave, report  # bench/ is on the path of a script run from it
from _reader import read_frames, viewer_core
from torch import nn

import synapse_probe
from synapse_serve.control import DEFAULT_BUDGET

D, BLOCKS, HEADS, T, BATCH, VOCAB = 256, 6, 4, 128, 8, 512


class Attention(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.qkv = nn.Linear(D, 3 * D)
        self.proj = nn.Linear(D, D)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, _ = x.shape
        q, k, v = self.qkv(x).view(b, t, 3, HEADS, D // HEADS).transpose(1, 3).unbind(2)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        out: torch.Tensor = self.proj(y.transpose(1, 2).reshape(b, t, D))
        return out


class Block(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.ln_1, self.ln_2 = nn.LayerNorm(D), nn.LayerNorm(D)
        self.attn = Attention()
        self.mlp = nn.Sequential(nn.Linear(D, 4 * D), nn.GELU(), nn.Linear(4 * D, D))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x))
        out: torch.Tensor = x + self.mlp(self.ln_2(x))
        return out


class GPT(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.wte = nn.Embedding(VOCAB, D)
        self.wpe = nn.Embedding(T, D)
        self.h = nn.ModuleList(Block() for _ in range(BLOCKS))
        self.ln_f = nn.LayerNorm(D)
        self.lm_head = nn.Linear(D, VOCAB, bias=False)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        x = self.wte(ids) + self.wpe(torch.arange(ids.shape[1]))
        for block in self.h:
            x = block(x)
        logits: torch.Tensor = self.lm_head(self.ln_f(x))
        return logits


def sites(model: GPT) -> list[tuple[str, nn.Module]]:
    """The probe's default sites: attention output, MLP output, block output."""
    out: list[tuple[str, nn.Module]] = []
    for i, block in enumerate(model.h):
        assert isinstance(block, Block)
        out += [(f"h.{i}.attn", block.attn), (f"h.{i}.mlp", block.mlp), (f"h.{i}", block)]
    return out


def item_hooks(model: GPT) -> None:
    """wandb.watch-style statistics: four host syncs per site per step."""

    def hook(module: nn.Module, args: object, out: torch.Tensor) -> None:
        x = out.detach()
        stats = (x.mean().item(), x.std().item(), x.min().item(), x.max().item())
        module.__dict__["last_stats"] = stats

    for _, module in sites(model):
        module.register_forward_hook(hook)


def tensorboard_hooks(model: GPT, logdir: str) -> Callable[[], None]:
    """add_histogram on every site each step; returns the writer's close."""
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(logdir)
    step = [0]

    def make(name: str) -> Callable[..., None]:
        def hook(module: nn.Module, args: object, out: torch.Tensor) -> None:
            writer.add_histogram(name, out.detach(), step[0])

        return hook

    for name, module in sites(model):
        module.register_forward_hook(make(name))
    model.register_forward_pre_hook(lambda m, a: step.__setitem__(0, step[0] + 1))
    return writer.close


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=120.0, help="time for measured rounds")
    parser.add_argument("--min-rounds", type=int, default=2, help=f"of {BLOCK} steps a variant")
    parser.add_argument("--warmup", type=int, default=34, help="steps past the calibration (16)")
    parser.add_argument("--per-block", default="attn+mlp+residual", help="the probe's sites")
    parser.add_argument("--compare", action="store_true", help="add item() and tensorboard")
    parser.add_argument(
        "--viewer-core", action="store_true", help="the viewers on a CPU of their own"
    )
    parser.add_argument(
        "--record", action="store_true", help="add both probes again, recording (attach(record=))"
    )
    args = parser.parse_args()
    variants = ["plain", "synapse", "every-step"]
    if args.record:
        variants += ["synapse+record", "every-step+record"]
    recordings = tempfile.TemporaryDirectory(prefix="synapse-bench-rec-")
    if args.compare:
        variants.append("item()")
        if importlib.util.find_spec("tensorboard") is not None:
            variants.append("tensorboard")
        else:
            print("tensorboard is not installed: its variant is skipped (pip install tensorboard)")
    torch.manual_seed(0)
    base = GPT()
    models = {name: copy.deepcopy(base) for name in variants}
    optimizers = {name: torch.optim.AdamW(m.parameters(), lr=3e-4) for name, m in models.items()}

    core = viewer_core() if args.viewer_core else None
    spawn = multiprocessing.get_context("spawn")
    stop, frames, viewer_ns = spawn.Event(), spawn.Value("q", 0), spawn.Value("q", 0)
    probes = {}
    readers = []
    for name in [v for v in variants if v.startswith(("synapse", "every-step"))]:
        budget = DEFAULT_BUDGET if name.startswith("synapse") else None
        record = f"{recordings.name}/{name}.mcap" if name.endswith("+record") else None
        probe = synapse_probe.attach(
            models[name], port=0, name="bench-gpt", per_block=args.per_block, grads=True,
            budget=budget, record=record,
        )  # fmt: skip
        address = probe.address
        assert address is not None
        reader = spawn.Process(
            target=read_frames, args=(*address, stop, frames, viewer_ns, core), daemon=True
        )
        reader.start()
        probes[name] = probe
        readers.append(reader)
    if "item()" in models:
        item_hooks(models["item()"])
    logdir = tempfile.TemporaryDirectory(prefix="synapse-bench-tb-")
    closers = []
    if "tensorboard" in models:
        closers.append(tensorboard_hooks(models["tensorboard"], logdir.name))

    ids = torch.randint(0, VOCAB, (BATCH, T + 1))
    inputs, targets = ids[:, :-1], ids[:, 1:]
    times: dict[str, list[float]] = {name: [] for name in models}
    steps = 0
    schedule = interleave(
        list(models), warmup=args.warmup, seconds=args.seconds, min_rounds=args.min_rounds
    )
    for name, step, timed in schedule:
        model, opt = models[name], optimizers[name]
        start = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        logits = model(inputs)
        loss = F.cross_entropy(logits.reshape(-1, VOCAB), targets.reshape(-1))
        torch.autograd.backward(loss)
        opt.step()
        if timed:
            times[name].append(time.perf_counter() - start)
        steps = max(steps, step + 1)

    print(f"small GPT d={D} blocks={BLOCKS} T={T} batch={BATCH}, AdamW, CPU, grads=True")
    report(times, probes)
    stop.set()
    for reader in readers:
        reader.join(5)
    for probe in probes.values():
        probe.close()
    for close in closers:
        close()
    logdir.cleanup()
    for name in variants:
        if name.endswith("+record"):
            path = f"{recordings.name}/{name}.mcap"
            print(f"{name}: recorded {os.path.getsize(path) / 1e6:.1f} MB")
    recordings.cleanup()
    print(
        f"timed steps={len(times['plain'])} a variant, warmup={args.warmup} "
        f"threads={torch.get_num_threads()} frames read={frames.value}"
    )
    where = f"on CPU {core} of their own" if core is not None else "on the training CPUs"
    print(
        f"viewers ({where}): {viewer_ns.value / 1e6 / steps:.1f} ms of CPU a step of every variant"
    )


if __name__ == "__main__":
    main()
