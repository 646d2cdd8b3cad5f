"""The Controls dock's "Trainer actions" box: one button per action the training script offers
(``probe.on_request``), and what the last one did."""

from __future__ import annotations

from PySide6.QtWidgets import QGroupBox, QLabel, QPushButton, QVBoxLayout, QWidget

from synapse_desktop.models.session import Session


class TrainerActionsBox(QGroupBox):
    """Reads ``session.actions``; a click asks the trainer to run that action. Hidden while
    the trainer offers none."""

    def __init__(self, session: Session, parent: QWidget | None = None) -> None:
        super().__init__("Trainer actions", parent)
        self.session = session
        self.buttons: dict[str, QPushButton] = {}
        self.status = QLabel()
        self.status.setWordWrap(True)
        self._layout = QVBoxLayout(self)
        self._layout.addWidget(self.status)
        session.actions.changed.connect(self.refresh)
        self.refresh()

    def refresh(self) -> None:
        actions = self.session.actions
        if tuple(self.buttons) != actions.names:
            for button in self.buttons.values():
                self._layout.removeWidget(button)
                button.deleteLater()
            self.buttons = {}
            for i, name in enumerate(actions.names):
                button = QPushButton(name)
                button.setToolTip(f"Run {name!r} in the training script at its next step")
                button.clicked.connect(lambda _=False, n=name: self.session.actions.request(n))
                self._layout.insertWidget(i, button)
                self.buttons[name] = button
        self.status.setText(actions.status)
        self.status.setVisible(bool(actions.status))
        self.setVisible(bool(actions.names))
