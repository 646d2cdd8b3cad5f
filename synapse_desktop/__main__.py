"""``python -m synapse_desktop``: the ``synapse`` command; with no arguments, the app."""

import sys

from synapse_desktop.cli import main

sys.exit(main(sys.argv[1:] or ["app"]))
