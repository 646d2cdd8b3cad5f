"""The ``synapse`` console script: one entry point, one module per subcommand.

Subcommand modules are imported only when chosen, so ``synapse --help`` stays fast and never
pulls in Qt or torch.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# name -> (module under synapse_desktop.commands, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "info": ("info", "what this machine gives Synapse: OpenGL, Qt, the C core, torch/CUDA"),
    "sim": ("sim", "stream a simulated Llama-3-8B training run (no torch needed)"),
    "tail": ("tail", "print the frames a probe sends, one line each"),
    "record": ("record", "record probes to an MCAP file, headless (Ctrl-C closes it)"),
    "export": ("export", "export a recording to Parquet or CSV tables for analysis"),
    "app": ("app", "open the desktop app (optionally --connect HOST:PORT)"),
    "demo": ("demo", "train a small Llama-style model with the probe and watch it in the app"),
    "watch": ("watch", "run the alert detectors on a live stream, headless; post alerts on"),
    "install-desktop": (
        "install_desktop",
        "add the app to the desktop's menu and open recordings with it (--uninstall)",
    ),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="synapse",
        description="Synapse: live activation statistics from a PyTorch training loop.",
    )
    from synapse_desktop import __version__

    parser.add_argument("--version", action="version", version=f"synapse {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_text) in COMMANDS.items():
        command_parser = sub.add_parser(name, help=help_text, description=help_text)
        command_parser.set_defaults(_module=module)
        _load(module).add_arguments(command_parser)
    return parser


def _load(module: str):  # type: ignore[no-untyped-def]
    return importlib.import_module(f"synapse_desktop.commands.{module}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    result: int = _load(args._module).run(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
