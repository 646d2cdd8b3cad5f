"""``python -m synapse_probe.demo``: run the demo trainer."""

import sys

if __name__ == "__main__":
    try:
        from .train import main
    except KeyboardInterrupt:  # stopped while torch was still loading
        print("synapse demo: stopped before training started", flush=True)
        sys.exit(0)
    sys.exit(main())
