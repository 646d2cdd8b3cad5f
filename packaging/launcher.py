"""Entry point of the bundled app: ``synapse-desktop [COMMAND] [OPTIONS]``.

With no command (or only options) it is ``synapse app ...``; ``synapse-desktop info``,
``sim``, ``tail`` and ``install-desktop`` are the ``synapse`` commands. ``-m MODULE`` runs one
of the bundled modules, so that the child processes ``synapse info`` starts
(``sys.executable -m ...``) work in the bundle as under Python.
"""

from __future__ import annotations

import runpy
import sys

from synapse_desktop.cli import COMMANDS, main

TOP_LEVEL_OPTIONS = {"-h", "--help", "--version"}


def run(argv: list[str]) -> int:
    if len(argv) >= 2 and argv[0] == "-m":
        sys.argv = [argv[1], *argv[2:]]
        runpy.run_module(argv[1], run_name="__main__", alter_sys=True)
        return 0
    if not argv or (argv[0] not in COMMANDS and argv[0] not in TOP_LEVEL_OPTIONS):
        argv = ["app", *argv]
    return main(argv)


if __name__ == "__main__":
    sys.exit(run(sys.argv[1:]))
