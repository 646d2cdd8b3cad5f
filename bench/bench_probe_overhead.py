"""Step-time cost of the probe on a small GPT trained on the CPU, next to what users do today.

Four copies of one model (d=256, 6 blocks, T=128, batch 8, AdamW) train side by side, one step
each in turn (the order rotates every round, after a warm-up), so that machine noise hits every
variant alike:

- plain: no instrumentation;
- synapse: the probe (every step measured: at this step time the 10 Hz default samples them all)
  streaming to a client (another process) that reads and decodes every frame;
- item(): forward hooks that read mean / std / min / max with ``.item()`` (what wandb.watch
  does), on the same sites as the probe;
- tensorboard: ``SummaryWriter.add_histogram`` on the same sites, every step (skipped when the
  ``tensorboard`` package is not installed).

Prints the median step time of each and its ratio to plain: the median of per-round ratios
(paired, robust to load drifting on a shared machine) and the ratio of medians. Measured rounds
run for about ``--seconds`` (75 s by default, so that the whole run stays near two minutes).
Run: ``python bench/bench_probe_overhead.py``.
"""

from __future__ import annotations

import argparse
import copy
import importlib.util
import math
import multiprocessing
import statistics
import tempfile
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from _reader import read_frames  # bench/ is on the path of a script run from it
from torch import nn

import synapse_probe

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
    parser.add_argument("--seconds", type=float, default=75.0, help="time for measured rounds")
    parser.add_argument("--min-rounds", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--per-block", default="attn+mlp+residual", help="the probe's sites")
    args = parser.parse_args()
    variants = ["plain", "synapse", "item()"]
    if importlib.util.find_spec("tensorboard") is not None:
        variants.append("tensorboard")
    else:
        print("tensorboard is not installed: its variant is skipped (pip install tensorboard)")
    torch.manual_seed(0)
    base = GPT()
    models = {name: copy.deepcopy(base) for name in variants}
    optimizers = {name: torch.optim.AdamW(m.parameters(), lr=3e-4) for name, m in models.items()}

    probe = synapse_probe.attach(
        models["synapse"], port=0, name="bench-gpt", per_block=args.per_block
    )
    address = probe.address
    assert address is not None
    spawn = multiprocessing.get_context("spawn")
    stop, frames = spawn.Event(), spawn.Value("q", 0)
    reader = spawn.Process(target=read_frames, args=(*address, stop, frames), daemon=True)
    reader.start()
    item_hooks(models["item()"])
    logdir = tempfile.TemporaryDirectory(prefix="synapse-bench-tb-")
    closers = []
    if "tensorboard" in models:
        closers.append(tensorboard_hooks(models["tensorboard"], logdir.name))

    ids = torch.randint(0, VOCAB, (BATCH, T + 1))
    inputs, targets = ids[:, :-1], ids[:, 1:]
    times: dict[str, list[float]] = {name: [] for name in models}
    names = list(models)
    deadline = math.inf
    r = 0
    while r < args.warmup + args.min_rounds or time.perf_counter() < deadline:
        if r == args.warmup:
            deadline = time.perf_counter() + args.seconds
        order = names[r % len(names) :] + names[: r % len(names)]
        for name in order:
            model, opt = models[name], optimizers[name]
            start = time.perf_counter()
            opt.zero_grad(set_to_none=True)
            logits = model(inputs)
            loss = F.cross_entropy(logits.reshape(-1, VOCAB), targets.reshape(-1))
            torch.autograd.backward(loss)
            opt.step()
            if r >= args.warmup:
                times[name].append(time.perf_counter() - start)
        r += 1

    stats = probe.stats()
    probe.close()
    stop.set()
    reader.join(5)
    for close in closers:
        close()
    logdir.cleanup()
    report(times, stats.probe_ns / max(stats.steps_seen, 1), stats.steps_sampled, frames.value)
    rounds = len(times["plain"])
    print(f"rounds={rounds} warmup={args.warmup} threads={torch.get_num_threads()}")


def report(times: dict[str, list[float]], probe_ns: float, sampled: int, frames: int) -> None:
    """Median step times; ratios to plain as the median of per-round ratios (paired, so that
    load drifting on a shared machine cancels) and as the ratio of medians."""
    plain = times["plain"]
    print(f"small GPT d={D} blocks={BLOCKS} T={T} batch={BATCH}, AdamW, CPU")
    print(f"{'variant':<12} {'median step':>12} {'paired ratio':>13} {'ratio of medians':>17}")
    for name, steps in times.items():
        paired = statistics.median(a / b for a, b in zip(steps, plain, strict=True))
        median = statistics.median(steps)
        print(
            f"{name:<12} {median * 1e3:>10.1f}ms {paired:>13.3f}"
            f" {median / statistics.median(plain):>17.3f}"
        )
    print(
        f"probe: {sampled} steps measured, {probe_ns / 1e6:.2f} ms/step on the training thread "
        f"(its own count, {probe_ns / 1e9 / statistics.median(plain):.1%} of a plain step); "
        f"{frames} frames read by the client"
    )


if __name__ == "__main__":
    main()
