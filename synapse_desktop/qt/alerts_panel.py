"""The alerts dock's widget: ``session.anomalies`` newest first (severity icon and colour, step,
layer and site, message), a count and a Clear button. Clicking an alert selects its site and
plots its evidence below the list."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QStyle,
    QVBoxLayout,
    QWidget,
)

from synapse_desktop.models.anomalies import Alert, Severity
from synapse_desktop.models.session import Session
from synapse_desktop.qt.evidence_plot import EvidencePlot

SEVERITY_ICONS = {
    Severity.INFO: QStyle.StandardPixmap.SP_MessageBoxInformation,
    Severity.WARNING: QStyle.StandardPixmap.SP_MessageBoxWarning,
    Severity.ERROR: QStyle.StandardPixmap.SP_MessageBoxCritical,
}
SEVERITY_COLORS = {Severity.WARNING: "#e8a33d", Severity.ERROR: "#e5534b"}  # INFO: the palette's
ALERT_ROLE = Qt.ItemDataRole.UserRole


class AlertsPanel(QWidget):
    """Reads ``session.anomalies``; writes ``session.selection`` (and clears the alerts).

    ``count_changed(n)`` carries the number of alerts listed (for the dock's title);
    ``activated(index, alert)`` the site index an alert was clicked for (-1 when the site is
    gone), and the alert.
    """

    count_changed = Signal(int)
    activated = Signal(int, object)

    def __init__(self, session: Session, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.list = QListWidget()
        self.list.setUniformItemSizes(True)
        self.list.setWordWrap(False)
        self.list.setMinimumHeight(120)
        self.list.setToolTip("Newest first. Click an alert to select its site")
        self.summary = QLabel()
        self.clear_button = QPushButton("Clear")
        self.clear_button.setToolTip("Forget the alerts listed (ongoing episodes stay quiet)")
        self.capture_button = QPushButton("Capture")  # wired by qt.capture_actions
        self.capture_button.setEnabled(False)
        self.capture_status = QLabel()  # where the last capture went
        self.capture_status.setWordWrap(True)
        self.capture_status.hide()
        bar = QHBoxLayout()
        bar.setContentsMargins(4, 2, 4, 0)
        bar.addWidget(self.summary, 1)
        bar.addWidget(self.capture_button)
        bar.addWidget(self.clear_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        layout.addLayout(bar)
        layout.addWidget(self.capture_status)
        layout.addWidget(self.list, 1)
        self.evidence = EvidencePlot()
        layout.addWidget(self.evidence)
        self._shown = (0, 0)  # anomalies' (generation, total) when the list was brought up to date
        self.list.itemClicked.connect(self._on_item)
        self.list.itemActivated.connect(self._on_item)
        self.clear_button.clicked.connect(self.clear)
        session.anomalies.changed.connect(self.refresh)
        self.refresh()

    @property
    def count(self) -> int:
        return self.list.count()

    def alert_at(self, row: int) -> Alert:
        alert = self.list.item(row).data(ALERT_ROLE)
        assert isinstance(alert, Alert)
        return alert

    def current_alert(self) -> Alert | None:
        """The alert selected in the list, if any."""
        item = self.list.currentItem()
        alert = item.data(ALERT_ROLE) if item is not None else None
        return alert if isinstance(alert, Alert) else None

    def clear(self) -> None:
        self.session.anomalies.clear()
        self.session.anomalies.flush()

    def refresh(self) -> None:
        """Bring the list up to date: new alerts go on top, the oldest beyond the bound go."""
        anomalies = self.session.anomalies
        generation, total = self._shown
        new = anomalies.total - total
        if generation == anomalies.generation and 0 <= new <= len(anomalies):
            fresh = list(anomalies.alerts)[len(anomalies) - new :] if new else []
        else:  # cleared, reset, or more new alerts than kept: start over
            self.list.clear()
            self.evidence.show_evidence(None)
            fresh = list(anomalies.alerts)
        self._shown = (anomalies.generation, anomalies.total)
        for alert in fresh:
            self.list.insertItem(0, self._item(alert))
        while self.list.count() > len(anomalies):
            self.list.takeItem(self.list.count() - 1)
        self._update_summary()

    def _item(self, alert: Alert) -> QListWidgetItem:
        where, _, detail = alert.message.partition(": ")
        item = QListWidgetItem(f"step {alert.step}   {where}\n{detail}")
        item.setIcon(self.style().standardIcon(SEVERITY_ICONS[alert.severity]))
        color = SEVERITY_COLORS.get(alert.severity)
        if color is not None:
            item.setForeground(QBrush(QColor(color)))
        item.setToolTip(
            f"{alert.kind.value}, step {alert.step}, rank {alert.rank}, "
            f"site id {alert.site_id}\n{alert.message}\nClick to select the site"
        )
        item.setData(ALERT_ROLE, alert)
        return item

    def _update_summary(self) -> None:
        anomalies = self.session.anomalies
        n = len(anomalies)
        text = "no alerts" if n == 0 else f"{n} alert{'' if n == 1 else 's'}"
        if anomalies.total > n:
            text += f" (the oldest {anomalies.total - n} dropped)"
        self.summary.setText(text)
        self.clear_button.setEnabled(n > 0)
        self.count_changed.emit(n)

    def _on_item(self, item: QListWidgetItem) -> None:
        alert = item.data(ALERT_ROLE)
        if not isinstance(alert, Alert):
            return
        self.evidence.show_evidence(alert.evidence)
        index = self.session.topology.index_of(alert.site_id)
        if index >= 0:
            self.session.selection.select(index)
        self.activated.emit(index, alert)
