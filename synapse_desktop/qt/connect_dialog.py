"""The connect dialog: endpoint (recent ones offered), token, and how to reach a GPU node."""

from __future__ import annotations

from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QLabel,
    QLineEdit,
    QVBoxLayout,
    QWidget,
)

from synapse_desktop.net.endpoint import Endpoint, parse_endpoints

TUNNEL_HELP = (
    "<b>Local trainer:</b> the probe listens on <code>localhost:9000</code>.<br>"
    "<b>Remote GPU node:</b> forward the port over SSH, then connect to localhost:<br>"
    "<code>ssh -N -L 9000:127.0.0.1:9000 user@gpu-node</code><br>"
    "A trainer listening beyond loopback requires its token.<br>"
    "<b>Several ranks:</b> one endpoint per rank, e.g. <code>localhost:9000-9003</code> "
    "or <code>node1:9000,node2:9000</code>."
)


class ConnectDialog(QDialog):
    """Returns ``endpoints`` (``endpoint``: the first) and ``token`` when accepted."""

    def __init__(self, recent: list[str], token: str = "", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Connect to a trainer")
        self.endpoint_box = QComboBox()
        self.endpoint_box.setEditable(True)
        self.endpoint_box.addItems(recent or ["localhost:9000"])
        self.endpoint_box.setCurrentIndex(0)
        self.endpoint_box.setToolTip(
            "HOST:PORT of the probe (default localhost:9000); several ranks: "
            "HOST:9000-9003 or a comma-separated list"
        )
        self.token_edit = QLineEdit(token)
        self.token_edit.setEchoMode(QLineEdit.EchoMode.Password)
        self.token_edit.setPlaceholderText("only for a trainer that listens beyond loopback")
        self.error = QLabel()
        self.error.setStyleSheet("color: #e5534b")
        form = QFormLayout()
        form.addRow("Endpoint", self.endpoint_box)
        form.addRow("Token", self.token_edit)
        self.help_text = QLabel(TUNNEL_HELP)
        self.help_text.setWordWrap(True)
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        buttons.button(QDialogButtonBox.StandardButton.Ok).setText("Connect")
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.help_text)
        layout.addWidget(self.error)
        layout.addWidget(buttons)
        self.endpoints: list[Endpoint] = []
        self.endpoint: Endpoint | None = None
        self.token: str | None = None

    def accept(self) -> None:
        try:
            self.endpoints = parse_endpoints(self.endpoint_box.currentText())
        except ValueError as exc:
            self.error.setText(str(exc))
            return
        self.endpoint = self.endpoints[0]
        self.token = self.token_edit.text() or None
        super().accept()
