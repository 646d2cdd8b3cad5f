"""Cost of the optimizer lens (``attach(optimizer=...)``) per measured step, on the demo model.

One model and its AdamW; in turn, round after round (so machine noise hits both alike):

- plain: one optimizer step;
- lens: the same step on a measured step of an ``OptimizerLens`` (pre-hook: parameter and
  gradient norms, the copy of the parameters, Adam's v < g^2 counts; post-hook: the update
  norms; ``finish``: the copy off the device), its capture then waited for and released as the
  encoder thread would.

A full training step (forward, backward, optimizer step) is timed in the same run as the yard
stick. Prints the median of each, the lens's extra time per measured step and that time over
the training step. CUDA times are taken with a synchronize at both ends (the bench's only host
syncs).

Run: ``python bench/bench_optimizer_lens.py [--preset demo] [--device cpu] [--rounds 40]``.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from synapse_probe.demo.data import Windows, load_corpus, split
from synapse_probe.demo.model import PRESETS, DemoForCausalLM, preset
from synapse_probe.demo.train import pick_device
from synapse_probe.lenses.optimizer_lens import OptimizerLens


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", choices=sorted(PRESETS), default="demo")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="cpu")
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1, help="CPU threads for torch")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    torch.manual_seed(0)
    config = preset(args.preset)
    model = DemoForCausalLM(config).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    train_bytes, _ = split(load_corpus(2_000_000))
    windows = Windows(train_bytes, args.batch, config.seq_len, seed=0, device=device)
    blocks = [(f"model.layers.{i}", layer) for i, layer in enumerate(model.model.layers)]
    lens = OptimizerLens(optimizer, blocks)

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()

    def train_step() -> None:
        inputs, targets = windows.sample()
        model.loss(inputs, targets).backward()

    def timed(fn) -> float:  # type: ignore[no-untyped-def]
        sync()
        start = time.perf_counter()
        fn()
        sync()
        return time.perf_counter() - start

    def plain() -> None:
        lens.begin(0, False)
        optimizer.step()

    def measured() -> None:
        lens.begin(0, True)
        optimizer.step()
        capture = lens.finish()
        assert capture is not None
        capture.wait()
        capture.messages()
        capture.release()

    times: dict[str, list[float]] = {"train": [], "plain": [], "lens": []}
    train_step()
    for _ in range(3):  # warm-up: Adam's state, the lens's buffers
        plain()
        measured()
    for i in range(args.rounds):
        optimizer.zero_grad(set_to_none=True)

        def full() -> None:
            train_step()
            optimizer.step()

        times["train"].append(timed(full))
        pair = [("plain", plain), ("lens", measured)]
        for name, fn in pair if i % 2 else reversed(pair):
            times[name].append(timed(fn))
    lens.close()
    median = {name: statistics.median(values) * 1e3 for name, values in times.items()}
    extra = median["lens"] - median["plain"]
    params = sum(p.numel() for p in model.parameters()) / 1e6
    print(
        f"{args.preset} ({params:.1f}M parameters, {len(blocks)} blocks) on {device.type}, "
        f"{args.rounds} rounds, medians:"
    )
    print(f"  training step      {median['train']:8.2f} ms")
    print(f"  optimizer step     {median['plain']:8.2f} ms")
    print(
        f"  with the lens      {median['lens']:8.2f} ms  ({median['lens'] / median['plain']:.2f}x)"
    )
    print(
        f"  lens, per measured step: {extra:.2f} ms = {100 * extra / median['train']:.1f}% "
        "of a training step"
    )


if __name__ == "__main__":
    main()
