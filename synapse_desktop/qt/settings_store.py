"""What persists between runs (QSettings): view settings, control wishes, recent endpoints."""

from __future__ import annotations

import dataclasses

from PySide6.QtCore import QSettings

from synapse_desktop.models.view_settings import ViewSettings

ORGANIZATION = "synapse"
APPLICATION = "synapse-desktop"
MAX_RECENT = 8


def open_settings() -> QSettings:
    return QSettings(ORGANIZATION, APPLICATION)


def load_view(settings: QSettings, view: ViewSettings) -> None:
    """Apply stored view settings; values that no longer validate are ignored."""
    for field in dataclasses.fields(view.values):
        stored = settings.value(f"view/{field.name}")
        if stored is None:
            continue
        default = getattr(view.values, field.name)
        try:
            value = _convert(stored, type(default))
            view.set(**{field.name: value})
        except (TypeError, ValueError):
            continue


def save_view(settings: QSettings, view: ViewSettings) -> None:
    for field in dataclasses.fields(view.values):
        settings.setValue(f"view/{field.name}", getattr(view.values, field.name))


def recent_endpoints(settings: QSettings) -> list[str]:
    value = settings.value("connection/recent", [])
    items = [value] if isinstance(value, str) else list(value) if isinstance(value, list) else []
    return [str(v) for v in items][:MAX_RECENT]


def remember_endpoint(settings: QSettings, endpoint: str) -> None:
    recent = [endpoint] + [e for e in recent_endpoints(settings) if e != endpoint]
    settings.setValue("connection/recent", recent[:MAX_RECENT])


def _convert(stored: object, kind: type) -> object:
    if kind is bool:
        return stored if isinstance(stored, bool) else str(stored).lower() in ("true", "1")
    return kind(stored)
