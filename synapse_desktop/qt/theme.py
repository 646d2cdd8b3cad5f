"""Dark and light palettes for the Qt side (the canvas follows ``ViewSettings.theme`` itself)."""

from __future__ import annotations

from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import QApplication

_DARK = {
    QPalette.ColorRole.Window: "#181b22",
    QPalette.ColorRole.WindowText: "#d8dde6",
    QPalette.ColorRole.Base: "#10131a",
    QPalette.ColorRole.AlternateBase: "#1d212a",
    QPalette.ColorRole.Text: "#d8dde6",
    QPalette.ColorRole.Button: "#232833",
    QPalette.ColorRole.ButtonText: "#d8dde6",
    QPalette.ColorRole.Highlight: "#3d8bfd",
    QPalette.ColorRole.HighlightedText: "#ffffff",
    QPalette.ColorRole.ToolTipBase: "#232833",
    QPalette.ColorRole.ToolTipText: "#e8ecf2",
    QPalette.ColorRole.PlaceholderText: "#7a8190",
}


def apply_theme(app: QApplication, theme: str) -> None:
    """Fusion style with the theme's palette."""
    app.setStyle("Fusion")
    if theme == "light":
        app.setPalette(app.style().standardPalette())
        return
    palette = QPalette()
    for role, color in _DARK.items():
        palette.setColor(role, QColor(color))
    palette.setColor(QPalette.ColorGroup.Disabled, QPalette.ColorRole.Text, QColor("#6b7180"))
    palette.setColor(QPalette.ColorGroup.Disabled, QPalette.ColorRole.ButtonText, QColor("#6b7180"))
    app.setPalette(palette)
