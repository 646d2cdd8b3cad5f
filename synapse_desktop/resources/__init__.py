"""Files shipped with the app (the icon)."""

from __future__ import annotations

from pathlib import Path

ICON = Path(__file__).with_name("synapse.svg")
