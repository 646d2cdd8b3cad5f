"""The demo trainer: a small Llama-style model learns Python source, byte by byte, with the
probe attached. ``python -m synapse_probe.demo --help`` lists the options."""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from collections.abc import Sequence
from contextlib import nullcontext
from typing import TYPE_CHECKING, Any

import torch

from .data import DEFAULT_MAX_BYTES, Windows, load_corpus, split
from .faults import KINDS, Fault, Injector, parse_fault
from .model import PRESETS, DemoForCausalLM, preset
from .stopping import StopFlag

if TYPE_CHECKING:
    from synapse_probe.probe import Probe

# The first line on stdout once the probe listens; `synapse demo` reads the port from it.
LISTENING = "synapse demo: listening on "
MODEL_NAME = "demo-llama"
DEFAULT_LR = {"tiny": 3e-3, "demo": 3e-3, "1b": 3e-4}
SCHEDULE_HORIZON = 3000  # steps of cosine decay when training runs until stopped


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m synapse_probe.demo",
        description="Train a small Llama-style byte-level model on the Python standard "
        "library's source, with the Synapse probe attached.",
    )
    parser.add_argument("--steps", type=int, default=0, help="steps to run (0: until stopped)")
    parser.add_argument("--host", default="127.0.0.1", help="probe address (default %(default)s)")
    parser.add_argument("--port", type=int, default=9000, help="probe port (0: any free port)")
    parser.add_argument("--token", default=None, help="viewer token (required beyond loopback)")
    parser.add_argument("--preset", choices=sorted(PRESETS), default="demo", help="model size")
    parser.add_argument("--moe", type=int, default=0, metavar="N", help="N experts per MLP, top-2")
    parser.add_argument(
        "--moe-capacity",
        type=float,
        default=0.0,
        metavar="F",
        help="expert capacity factor: drop assignments beyond F x fair share (0: dropless)",
    )
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch", type=int, default=8, help="sequences per step")
    parser.add_argument("--lr", type=float, default=None, help="peak learning rate")
    parser.add_argument("--warmup", type=int, default=50, help="learning-rate warm-up steps")
    parser.add_argument("--log-every", type=int, default=10, metavar="N", help="progress lines")
    parser.add_argument(
        "--threads", type=int, default=0, metavar="N", help="CPU threads for torch (0: its own)"
    )
    parser.add_argument("--corpus-bytes", type=int, default=DEFAULT_MAX_BYTES)
    parser.add_argument(
        "--no-grads", dest="grads", action="store_false", help="activations only (no gradients)"
    )
    parser.add_argument(
        "--wait-for-viewer",
        type=float,
        default=0.0,
        metavar="S",
        help="wait up to S seconds for a viewer to connect before training (default: start now)",
    )
    parser.add_argument(
        "--inject",
        action="append",
        default=[],
        type=_fault,
        metavar="KIND@STEP",
        help=f"misbehave on purpose at STEP, KIND one of {', '.join(KINDS)} (repeatable; "
        "docs/DEMO.md)",
    )
    parser.add_argument(
        "--rate-hz",
        type=float,
        default=None,
        help="measure at most this many steps a second, without an overhead budget "
        "(1000: every step of the demo; default: the probe's rate and budget)",
    )
    parser.add_argument("--parent-pid", type=int, default=None, help=argparse.SUPPRESS)
    return parser


def _fault(text: str) -> Fault:
    try:
        return parse_fault(text)
    except ValueError as exc:  # argparse shows an ArgumentTypeError's own words
        raise argparse.ArgumentTypeError(str(exc)) from None


class Trainer:
    """AdamW with warm-up and cosine decay, gradient clipping, bf16 autocast on CUDA.

    ``step`` never waits for the device: loss and gradient norm come back as tensors.
    """

    def __init__(
        self,
        model: DemoForCausalLM,
        windows: Windows,
        *,
        lr: float,
        warmup: int,
        horizon: int,
        clip: float = 1.0,
    ) -> None:
        self.model, self.windows = model, windows
        self.injector: Injector | None = None
        self.lr, self.warmup, self.horizon, self.clip = lr, warmup, max(horizon, 1), clip
        cuda = windows.device.type == "cuda"
        decay = [p for p in model.parameters() if p.dim() >= 2]
        no_decay = [p for p in model.parameters() if p.dim() < 2]
        groups = [{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0}]
        self.optimizer = torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.95), fused=cuda or None)
        self._autocast: Any = (
            (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if cuda else nullcontext
        )

    def lr_at(self, step: int) -> float:
        """Linear warm-up to ``lr``, cosine decay to a tenth of it at ``horizon``, then flat."""
        if step < self.warmup:
            return self.lr * (step + 1) / self.warmup
        progress = min(1.0, (step - self.warmup) / max(1, self.horizon - self.warmup))
        return self.lr * (0.1 + 0.45 * (1.0 + math.cos(math.pi * progress)))

    def step(self, step: int) -> tuple[torch.Tensor, float, torch.Tensor]:
        """One optimizer step: (loss, learning rate, gradient norm before clipping)."""
        lr = self.lr_at(step) * (self.injector.lr_factor() if self.injector else 1.0)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        inputs, targets = self.windows.sample()
        with self._autocast():
            loss = self.model.loss(inputs, targets)
        torch.autograd.backward(loss)
        norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.clip)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return loss.detach(), lr, norm


def _byte_name(value: int) -> str:
    if value == 0x20:
        return "\u2423"  # ␣
    if value == 0x0A:
        return "\u23ce"  # ⏎
    if value == 0x09:
        return "\u21e5"  # ⇥
    if 0x20 < value < 0x7F:
        return chr(value)
    return f"\\x{value:02x}"


BYTE_NAMES = tuple(_byte_name(value) for value in range(256))


def byte_tokens(ids: list[int]) -> list[str]:
    """The demo's tokens (bytes) as the app shows them: printable ASCII as itself, space as
    ``␣``, newline as ``⏎``, tab as ``⇥``, any other byte (control bytes, the pieces of a
    multi-byte UTF-8 character) as its escape ``\\xNN``."""
    return [BYTE_NAMES[i] if 0 <= i < len(BYTE_NAMES) else str(i) for i in ids]


def pick_device(name: str) -> torch.device:
    """``auto``: CUDA when available, else the CPU. ``cuda`` without a GPU raises ValueError."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda: no CUDA device is available")
    return torch.device(name)


def build(args: argparse.Namespace, device: torch.device) -> tuple[DemoForCausalLM, Trainer, str]:
    """The model, its trainer, and a line describing both."""
    torch.manual_seed(args.seed)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    config = preset(args.preset, moe_experts=args.moe, moe_capacity=args.moe_capacity)
    train_bytes, _ = split(load_corpus(args.corpus_bytes))
    windows = Windows(train_bytes, args.batch, config.seq_len, seed=args.seed, device=device)
    model = DemoForCausalLM(config).to(device)
    lr = args.lr if args.lr is not None else DEFAULT_LR[args.preset]
    horizon = args.steps if args.steps > 0 else SCHEDULE_HORIZON
    warmup = min(args.warmup, max(1, horizon // 10))
    trainer = Trainer(model, windows, lr=lr, warmup=warmup, horizon=horizon)
    if args.inject:
        trainer.injector = Injector(args.inject, model)
    moe = f", {config.moe_experts} experts top-{config.moe_top_k}" if config.moe_experts else ""
    about = (
        f"synapse demo: {model.num_parameters() / 1e6:.1f}M parameters ({config.n_layers} "
        f"layers, d {config.d_model}, {config.n_heads} heads / {config.n_kv_heads} kv{moe}) on "
        f"{device.type}, {args.batch} x {config.seq_len} bytes of Python standard library "
        f"source a step ({len(train_bytes) / 1e6:.1f} MB)"
    )
    return model, trainer, about


def main(argv: Sequence[str] | None = None, *, server: Any = None) -> int:
    """Run the demo; 0 after a clean stop, 2 when it cannot start (e.g. the port is in use).
    ``server`` replaces the probe's TCP server (tests)."""
    args = build_parser().parse_args(argv)
    stop = StopFlag(args.parent_pid)
    stop.install()
    try:
        return _run(args, stop, server)
    finally:
        stop.restore()


def _run(args: argparse.Namespace, stop: StopFlag, server: Any = None) -> int:
    from synapse_probe import attach
    from synapse_serve.listener import PortInUseError

    try:
        device = pick_device(args.device)
        model, trainer, about = build(args, device)
    except ValueError as exc:
        print(f"synapse demo: {exc}", file=sys.stderr)
        return 2
    try:
        probe = attach(
            model,
            args.host,
            args.port,
            token=args.token,
            name=MODEL_NAME,
            grads=args.grads,
            tokenizer=byte_tokens,
            optimizer=trainer.optimizer,
            server=server,
            **({} if args.rate_hz is None else {"rate_hz": args.rate_hz, "budget": None}),
        )
    except PortInUseError:
        print(
            f"synapse demo: port {args.port} on {args.host} is in use; choose another with "
            "--port N (--port 0: any free port)",
            file=sys.stderr,
        )
        return 2
    except ValueError as exc:
        print(f"synapse demo: {exc}", file=sys.stderr)
        return 2
    host, port = probe.address or (args.host, args.port)
    step = 0
    try:
        _say(stop, f"{LISTENING}{host}:{port}")
        _say(stop, about)
        _say(stop, f"synapse demo: watch it with: synapse app --connect {host}:{port}")
        if args.wait_for_viewer > 0:
            _wait_for_viewer(probe, args.wait_for_viewer, stop)
        step = _train(args, trainer, probe, stop, device)
    except KeyboardInterrupt:
        stop.set("interrupted twice")
    finally:
        probe.close()
    _say(stop, f"synapse demo: stopped after {step} steps ({stop.reason}); probe closed")
    return 0


def _train(
    args: argparse.Namespace, trainer: Trainer, probe: Probe, stop: StopFlag, device: torch.device
) -> int:
    """The loop; returns the number of steps run."""
    tokens = args.batch * trainer.model.config.seq_len
    loss_sum = torch.zeros((), device=device)
    since, mark = 0, time.perf_counter()
    step = 0
    while args.steps <= 0 or step < args.steps:
        if stop.should_stop():
            break
        step += 1
        probe.step(step)
        if trainer.injector is not None:
            trainer.injector.at(step)
        loss, lr, norm = trainer.step(step - 1)
        probe.log_metrics(loss=loss, lr=lr, grad_norm=norm)  # tensors: read off the hot path
        loss_sum += loss
        since += 1
        if step % args.log_every == 0 or step == args.steps:
            mean = loss_sum.item() / since  # the one read of the device, every log_every steps
            now = time.perf_counter()
            rate = since / (now - mark)
            _say(
                stop,
                f"step {step:>6}  loss {mean:.4f}  lr {lr:.2e}  grad-norm {float(norm):.3f}  "
                f"{rate:.2f} steps/s  {rate * tokens:,.0f} tok/s",
            )
            loss_sum.zero_()
            since, mark = 0, now
    if not stop.reason:
        stop.set("done")
    return step


def _wait_for_viewer(probe: Probe, seconds: float, stop: StopFlag) -> None:
    """Until a viewer is connected, ``seconds`` have passed, or a stop is asked for."""
    deadline = time.monotonic() + seconds
    while probe.client_count == 0 and time.monotonic() < deadline and not stop.should_stop():
        time.sleep(0.05)


def _say(stop: StopFlag, line: str) -> None:
    """Print ``line``; a closed stdout (the reader is gone) stops training instead of failing."""
    try:
        print(line, flush=True)
    except OSError:
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 (kept until exit)
        stop.set("stdout closed")
