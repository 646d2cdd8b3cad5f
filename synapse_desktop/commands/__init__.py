"""Subcommands of ``synapse``.

Each module defines ``add_arguments(parser)`` and ``run(args) -> int``. Heavy imports (Qt,
VisPy, the native extension) happen inside ``run`` so that building the parser stays cheap.
"""
