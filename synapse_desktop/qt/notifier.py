"""A desktop notification for each new error alert while the app's window is not the active one
(the system tray's balloon where there is a tray, else the taskbar entry asks for attention)."""

from __future__ import annotations

from PySide6.QtGui import QIcon
from PySide6.QtWidgets import QApplication, QSystemTrayIcon, QWidget

from synapse_desktop.models.anomalies import Alert, Anomalies, Severity

SHOW_MS = 8000
SHOWN_KEPT = 16  # the newest alerts notified about that ``shown`` keeps


class AlertNotifier:
    """Watches ``anomalies``; notifies about errors raised while ``window`` is inactive."""

    def __init__(self, anomalies: Anomalies, window: QWidget, icon: QIcon) -> None:
        self.anomalies = anomalies
        self.window = window
        self.tray: QSystemTrayIcon | None = None
        if QSystemTrayIcon.isSystemTrayAvailable():
            self.tray = QSystemTrayIcon(icon, window)
            self.tray.setToolTip("Synapse")
        self.shown: list[Alert] = []  # the newest SHOWN_KEPT notified about, oldest first
        self._seen = (anomalies.generation, anomalies.total)
        anomalies.changed.connect(self._on_changed)

    def _on_changed(self) -> None:
        anomalies = self.anomalies
        generation, total = self._seen
        new = anomalies.total - total
        self._seen = (anomalies.generation, anomalies.total)
        if generation != anomalies.generation:  # cleared, a new run, a replay's seek: no news
            return
        if new <= 0 or self.window.isActiveWindow():
            return
        fresh = list(anomalies.alerts)[-min(new, len(anomalies)) :]
        errors = [alert for alert in fresh if alert.severity >= Severity.ERROR]
        if errors:
            self.notify(errors)

    def notify(self, errors: list[Alert]) -> None:
        first = errors[0]
        more = f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""
        title = f"Synapse: {first.kind.value} at step {first.step}"
        self.shown.extend(errors)
        del self.shown[:-SHOWN_KEPT]
        if self.tray is not None:
            self.tray.show()
            self.tray.showMessage(
                title, first.message + more, QSystemTrayIcon.MessageIcon.Critical, SHOW_MS
            )
        QApplication.alert(self.window)
