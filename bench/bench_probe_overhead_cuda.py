"""Step-time cost of the probe on a GPU: a ~0.8B-parameter pre-norm transformer in bf16 autocast.

Three copies of one model (``nn.TransformerEncoder``, 16 layers, d=2048, causal, AdamW) train
in turn, a block of steps each, the order rotating every round (``_overhead.interleave``):
``plain``; ``every-step``, the probe without a budget (default sites and rate, which at this step
time measures every step); and
``budget``, the probe at its default budget (1 %: its governor chooses the measured steps).
Gradients on or off (``--grads``); each probe streams to a reader process that decodes every
frame. The bench alone synchronises the device at each step's ends to time it; the probe itself
never does (tests/probe/test_training.py and test_probe_budget.py check that with CUDA's
sync-debug mode).

Prints the median step time of each, the median of per-round ratios, the ratio of medians and
the ratio of total times (which counts a governed probe's rare measured steps), and each probe's
own count of its cost. Aims (issue #11): every-step <= 1.01 (activations), <= 1.02 (grads);
budget <= 1.005.
Run (needs CUDA): ``python bench/bench_probe_overhead_cuda.py [--grads] [--seconds 60]``.
"""

from __future__ import annotations

import argparse
import copy
import multiprocessing
import time

import torch
import torch.nn.functional as F
from _overhead import interleave, report  # bench/ is on the path of a script run from it
from _reader import read_frames
from torch import nn

import synapse_probe
from synapse_serve.control import DEFAULT_BUDGET

D, LAYERS, HEADS, FFN, VOCAB = 2048, 16, 16, 8192, 32000


class LM(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(VOCAB, D)
        layer = nn.TransformerEncoderLayer(
            D, HEADS, FFN, dropout=0.0, activation="gelu", batch_first=True, norm_first=True
        )
        self.layers = nn.TransformerEncoder(layer, LAYERS, enable_nested_tensor=False)
        self.head = nn.Linear(D, VOCAB, bias=False)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        mask = nn.Transformer.generate_square_subsequent_mask(ids.shape[1], device=ids.device)
        x = self.layers(self.embed(ids), mask=mask, is_causal=True)
        out: torch.Tensor = self.head(x)
        return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--seq", type=int, default=1024)
    parser.add_argument("--grads", action="store_true", help="gradient summaries and norms too")
    parser.add_argument("--warmup", type=int, default=34, help="steps not timed (calibration)")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("bench_probe_overhead_cuda: no CUDA device here, nothing measured")
        return
    torch.manual_seed(0)
    base = LM().cuda()
    budgets = {"every-step": None, "budget": DEFAULT_BUDGET}
    models = {"plain": base, **{name: copy.deepcopy(base) for name in budgets}}
    optimizers = {n: torch.optim.AdamW(m.parameters(), lr=1e-4) for n, m in models.items()}
    params = sum(p.numel() for p in base.parameters())
    spawn = multiprocessing.get_context("spawn")
    stop, frames = spawn.Event(), spawn.Value("q", 0)
    probes, readers = {}, []
    for name, budget in budgets.items():
        probe = synapse_probe.attach(
            models[name], port=0, name="bench-cuda", grads=args.grads, budget=budget
        )
        assert probe.address is not None
        reader = spawn.Process(target=read_frames, args=(*probe.address, stop, frames))
        reader.start()
        probes[name], readers = probe, [*readers, reader]

    ids = torch.randint(0, VOCAB, (args.batch, args.seq + 1), device="cuda")
    inputs, targets = ids[:, :-1], ids[:, 1:]
    times: dict[str, list[float]] = {n: [] for n in models}
    schedule = interleave(list(models), warmup=args.warmup, seconds=args.seconds, min_rounds=2)
    for name, _, timed in schedule:
        model, opt = models[name], optimizers[name]
        torch.cuda.synchronize()
        start = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            logits = model(inputs)
            loss = F.cross_entropy(logits.reshape(-1, VOCAB).float(), targets.reshape(-1))
        loss.backward()
        opt.step()
        torch.cuda.synchronize()
        if timed:
            times[name].append(time.perf_counter() - start)

    print(
        f"{torch.cuda.get_device_name()}: {params / 1e9:.2f}B params, d={D} layers={LAYERS}, "
        f"batch {args.batch} x {args.seq} tokens, bf16 autocast, AdamW, grads={args.grads}"
    )
    report(times, probes)
    for probe in probes.values():
        probe.close()
    stop.set()
    for reader in readers:
        reader.join(5)
    print(f"timed steps={len(times['plain'])} a variant; {frames.value} frames read by the clients")


if __name__ == "__main__":
    main()
