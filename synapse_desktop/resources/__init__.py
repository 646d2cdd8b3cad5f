"""Files shipped with the app: the icon, the desktop entry's template, the recordings' MIME type."""

from __future__ import annotations

from pathlib import Path

ICON = Path(__file__).with_name("synapse.svg")
DESKTOP_TEMPLATE = Path(__file__).with_name("synapse-desktop.desktop")
MIME_XML = Path(__file__).with_name("synapse-recording.xml")
