"""``synapse sim``: stream a synthetic Llama-3-8B training run, as a probe would, without torch."""

from __future__ import annotations

import argparse
import signal
import sys
import threading

PER_BLOCK_CHOICES = ("attn+mlp", "attn+mlp+residual", "residual")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default: %(default)s)"
    )
    parser.add_argument("--port", type=int, default=9000, help="TCP port (default: %(default)s)")
    parser.add_argument(
        "--fps", type=float, default=10.0, help="sampled steps per second (default: %(default)s)"
    )
    parser.add_argument(
        "--threshold-mode",
        choices=("sigma", "top", "absolute"),
        default="sigma",
        help="how --threshold selects each site's neurons: k sigma above the site's mean, the "
        "top fraction of the site, or mean |x| above a value (default: %(default)s)",
    )
    parser.add_argument(
        "--threshold",
        type=float,
        default=None,
        help="the threshold in its mode's units (default: 2.5 sigma, top 0.01, absolute 1.0)",
    )
    parser.add_argument(
        "--layers", type=int, default=32, help="transformer blocks (default: %(default)s)"
    )
    parser.add_argument(
        "--per-block",
        choices=PER_BLOCK_CHOICES,
        default="attn+mlp+residual",
        help="sites per block (default: %(default)s)",
    )
    parser.add_argument(
        "--moe",
        type=int,
        default=0,
        metavar="N",
        help="make every block a mixture of N experts and stream its routing (default: dense)",
    )
    parser.add_argument(
        "--ranks",
        type=int,
        default=1,
        metavar="N",
        help="stream what the serving rank of an N-rank job sends: merged statistics, rank "
        "skew, job status (default: one rank)",
    )
    parser.add_argument(
        "--drift-rank",
        type=int,
        default=None,
        metavar="R",
        help="with --ranks: the rank whose MLP drifts away (default: N - 2)",
    )
    parser.add_argument(
        "--drift-step",
        type=int,
        default=100,
        metavar="S",
        help="with --ranks: the step the drift starts (default: %(default)s)",
    )
    parser.add_argument("--token", default=None, help="require viewers to present this token")
    parser.add_argument("--steps", type=int, default=None, help="stop after this many steps")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    parser.add_argument(
        "--port-fallback", action="store_true", help="take the next free port if PORT is in use"
    )


def run(args: argparse.Namespace) -> int:
    from synapse_serve.listener import PortInUseError
    from synapse_serve.signals import set_on_signals
    from synapse_serve.sim import SimOptions, Simulator

    options = SimOptions(
        host=args.host,
        port=args.port,
        fps=args.fps,
        threshold=args.threshold,
        threshold_mode=args.threshold_mode,
        layers=args.layers,
        per_block=args.per_block,
        token=args.token,
        steps=args.steps,
        seed=args.seed,
        port_fallback=args.port_fallback,
        moe=args.moe,
        ranks=args.ranks,
        drift_rank=args.drift_rank,
        drift_step=args.drift_step,
    )
    stop = threading.Event()
    set_on_signals(stop, (signal.SIGTERM,))  # a clean stop, as for Ctrl-C
    try:
        simulator = Simulator(options)
    except ValueError as exc:
        print(f"synapse sim: {exc}", file=sys.stderr)
        return 2
    try:
        # From here on Ctrl-C stops cleanly, even if it comes as start-up prints its line.
        simulator.start()
        simulator.run(stop)
    except PortInUseError as exc:
        print(f"synapse sim: {exc} (here: --port-fallback or --port N)", file=sys.stderr)
        return 2
    except ValueError as exc:
        print(f"synapse sim: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        pass
    finally:
        simulator.close()
    print(f"synapse sim: stopped after {simulator.step} steps", file=sys.stderr)
    return 0
