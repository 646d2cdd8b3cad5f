"""``python -m synapse_desktop``: the same as the ``synapse`` command."""

import sys

from synapse_desktop.cli import main

sys.exit(main())
