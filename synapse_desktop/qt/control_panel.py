"""The control panel: trainer settings (sent as CONTROL) and view settings.

Widgets write to the models (``session.control.request``, ``session.view.set``); model changes
come back into the widgets inside ``QSignalBlocker`` blocks, so nothing loops.
"""

from __future__ import annotations

from PySide6.QtCore import QSignalBlocker, Qt, QTimer
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QGridLayout,
    QGroupBox,
    QLabel,
    QPushButton,
    QSlider,
    QVBoxLayout,
    QWidget,
)

from synapse_desktop.models.ranks import MERGED
from synapse_desktop.models.session import Session
from synapse_desktop.models.skew import Z_FULL
from synapse_desktop.models.thresholds import THRESHOLD_MODES, ThresholdChoice
from synapse_desktop.models.view_settings import COLORMAPS, STATISTICS, THEMES
from synapse_desktop.scene.scales import SCALES
from synapse_native.protocol import Capability, SiteKind, ThresholdMode

KIND_BOXES = (("attn", SiteKind.ATTN), ("mlp", SiteKind.MLP), ("residual", SiteKind.RESIDUAL))
SEND_DELAY_MS = 350  # spin boxes send once the user pauses
SPACING_STEPS = 100  # slider units per spacing factor of 1


def kind_bit(kind: SiteKind) -> int:
    return 1 << int(kind)


class ControlPanel(QWidget):
    def __init__(self, session: Session, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.threshold_mode = QComboBox()
        for mode in THRESHOLD_MODES.values():
            self.threshold_mode.addItem(mode.label, int(mode.mode))
        self.threshold = QDoubleSpinBox(decimals=3, minimum=0.0, maximum=1e6, singleStep=0.05)
        self.threshold_ack = QLabel("in force: -")
        self.rate = QDoubleSpinBox(decimals=1, minimum=0.1, maximum=100.0, singleStep=1.0)
        self.rate.setSuffix(" /s")
        self.rate_ack = QLabel("in force: -")
        self.budget = QDoubleSpinBox(decimals=1, minimum=0.1, maximum=100.0, singleStep=0.5)
        self.budget.setSuffix(" % of step")
        self.budget.setValue(1.0)
        self.budget.setToolTip(
            "Most of the training step the probe may cost: it measures fewer steps, and runs "
            "its lenses less often, to stay under it"
        )
        self.budget_ack = QLabel("in force: -")
        self.kinds = {name: QCheckBox(name) for name, _ in KIND_BOXES}
        self.pause = QPushButton("Pause")
        self.pause.setCheckable(True)
        self.pause.setToolTip("Stop (or resume) the trainer's stream")
        self.control_note = QLabel()
        self.control_note.setWordWrap(True)
        self.statistic = QComboBox()
        for name in STATISTICS:
            self.statistic.addItem(SCALES[name].label, name)
        self.colormap = QComboBox()
        self.colormap.addItems(list(COLORMAPS))
        self.theme = QComboBox()
        self.theme.addItems(list(THEMES))
        self.glow = QCheckBox("Glow")
        self.points = QCheckBox("Neuron points")
        self.spacing = QSlider(Qt.Orientation.Horizontal)
        self.spacing.setRange(25, 400)
        self.spacing.setToolTip("Distance between layers")
        self.scale_note = QLabel()
        self.rank = QComboBox()
        self.rank.setToolTip(
            "Show one rank, or the mean across ranks. On a job stream: the merged statistics, "
            "with one rank's sparse points and attention relayed in full"
        )
        self.rank_spread = QCheckBox("Colour by spread across ranks")
        self.rank_spread.setToolTip(
            "Colour each plane by how far apart the ranks' values of the statistic are "
            "(max - min); the tooltip names the rank farthest from the mean. On a job stream: "
            "by the rank skew, how many spreads of the other ranks the farthest rank is away"
        )
        self._build()
        self._send_timer = QTimer(self, singleShot=True, interval=SEND_DELAY_MS)
        self._send_timer.timeout.connect(self._send_numbers)
        self._budget_timer = QTimer(self, singleShot=True, interval=SEND_DELAY_MS)
        self._budget_timer.timeout.connect(self._send_budget)
        self.budget.valueChanged.connect(self._budget_timer.start)
        session.counters.changed.connect(self._on_cost)

        self.threshold.valueChanged.connect(self._send_timer.start)
        self.threshold_mode.currentIndexChanged.connect(self._send_mode)
        self.rate.valueChanged.connect(self._send_timer.start)
        for box in self.kinds.values():
            box.toggled.connect(self._send_kinds)
        self.pause.toggled.connect(self._send_pause)
        self.statistic.currentIndexChanged.connect(
            lambda: session.view.set(statistic=self.statistic.currentData())
        )
        self.colormap.currentTextChanged.connect(lambda v: session.view.set(colormap=v))
        self.theme.currentTextChanged.connect(lambda v: session.view.set(theme=v))
        self.glow.toggled.connect(lambda v: session.view.set(glow=v))
        self.points.toggled.connect(lambda v: session.view.set(points=v))
        self.spacing.valueChanged.connect(
            lambda v: session.view.set(layer_spacing=v / SPACING_STEPS)
        )
        self.rank.currentIndexChanged.connect(self._on_rank_chosen)
        self.rank_spread.toggled.connect(lambda v: session.view.set(rank_spread=v))
        session.control.changed.connect(self._on_control)
        session.view.changed.connect(self._on_view)
        session.connection.changed.connect(self._on_connection)
        session.ranks.changed.connect(self._on_ranks)
        session.skew.changed.connect(self._on_skew)
        self._on_ranks()
        self._on_control()
        self._on_view("", None)
        self._on_connection(session.connection.status)

    def _build(self) -> None:
        trainer = QGroupBox("Trainer")
        form = QFormLayout(trainer)
        form.addRow("Light", self.threshold_mode)
        form.addRow("Threshold", self.threshold)
        form.addRow("", self.threshold_ack)
        form.addRow("Summary rate", self.rate)
        form.addRow("", self.rate_ack)
        form.addRow("Probe budget", self.budget)
        form.addRow("", self.budget_ack)
        kinds = QGridLayout()  # two columns: fits a narrow dock
        for i, box in enumerate(self.kinds.values()):
            kinds.addWidget(box, i // 2, i % 2)
        form.addRow("Sites", kinds)
        form.addRow(self.pause)
        form.addRow(self.control_note)
        view = QGroupBox("View")
        vform = QFormLayout(view)
        vform.addRow("Colour by", self.statistic)
        vform.addRow("", self.scale_note)
        vform.addRow("Colour map", self.colormap)
        vform.addRow("Theme", self.theme)
        vform.addRow(self.glow)
        vform.addRow(self.points)
        vform.addRow("Layer spacing", self.spacing)
        ranks = QGroupBox("Ranks")
        rform = QFormLayout(ranks)
        rform.addRow("Show", self.rank)
        rform.addRow(self.rank_spread)
        layout = QVBoxLayout(self)
        layout.addWidget(trainer)
        layout.addWidget(view)
        layout.addWidget(ranks)
        layout.addStretch(1)

    # -- widgets -> models ----------------------------------------------------------------------

    def _mode(self) -> ThresholdChoice:
        data = self.threshold_mode.currentData()
        return THRESHOLD_MODES.get(data, THRESHOLD_MODES[ThresholdMode.ABSOLUTE])

    def _send_mode(self) -> None:
        """A new mode goes with its default threshold (a value of one mode means nothing in
        another)."""
        self._send_timer.stop()
        mode = self._mode()
        self._show_mode(mode)
        with QSignalBlocker(self.threshold):
            self.threshold.setValue(mode.shown(mode.default))
        self.session.control.request(threshold=mode.default, threshold_mode=int(mode.mode))

    def _show_mode(self, mode: ThresholdChoice) -> None:
        self.threshold.setDecimals(mode.decimals)
        self.threshold.setRange(0.0, mode.shown(mode.maximum))
        self.threshold.setSingleStep(mode.step)
        self.threshold.setSuffix(mode.suffix)
        self.threshold.setToolTip(mode.tip)
        self.threshold_mode.setToolTip(mode.tip)

    def _send_numbers(self) -> None:
        state = self.session.control.state
        mode = self._mode()
        threshold: float | None = mode.wire(self.threshold.value())
        rate: float | None = self.rate.value()
        if state is not None and abs(mode.shown(state.threshold) - self.threshold.value()) <= 5e-4:
            threshold = None
        if state is not None and abs(self.rate.value() - state.rate_hz) <= 0.05:
            rate = None
        modes = self.session.connection.status.capabilities & Capability.THRESHOLD_MODES
        threshold_mode = int(mode.mode) if modes and threshold is not None else None
        if threshold is not None or rate is not None:
            self.session.control.request(
                threshold=threshold, rate_hz=rate, threshold_mode=threshold_mode
            )

    def _send_budget(self) -> None:
        self.session.control.request(budget=self.budget.value() / 100)

    def _send_kinds(self) -> None:
        mask = sum(kind_bit(kind) for name, kind in KIND_BOXES if self.kinds[name].isChecked())
        self.session.control.request(site_kinds=mask)

    def _send_pause(self, paused: bool) -> None:
        self.session.control.request(paused=paused)

    # -- models -> widgets ----------------------------------------------------------------------

    def _on_control(self) -> None:
        control = self.session.control
        state = control.state
        if state is not None:
            mode = THRESHOLD_MODES.get(
                state.threshold_mode, THRESHOLD_MODES[ThresholdMode.ABSOLUTE]
            )
            self.threshold_ack.setText(f"in force: {mode.describe(state.threshold)}")
            self.rate_ack.setText(f"in force: {state.rate_hz:.1f} /s")
            if not self._send_timer.isActive() and not control.pending:
                with QSignalBlocker(self.threshold), QSignalBlocker(self.rate):
                    with QSignalBlocker(self.threshold_mode):
                        self.threshold_mode.setCurrentIndex(
                            max(0, self.threshold_mode.findData(int(mode.mode)))
                        )
                    self._show_mode(mode)
                    self.threshold.setValue(mode.shown(state.threshold))
                    self.rate.setValue(state.rate_hz)
            for name, kind in KIND_BOXES:
                with QSignalBlocker(self.kinds[name]):
                    self.kinds[name].setChecked(bool(state.site_kinds & kind_bit(kind)))
            with QSignalBlocker(self.pause):
                self.pause.setChecked(state.paused)
                self.pause.setText("Resume" if state.paused else "Pause")
        else:
            self.threshold_ack.setText("in force: -")
            self.rate_ack.setText("in force: -")
        if control.error:
            self.control_note.setText(f"Refused: {control.error}")
        elif control.pending:
            self.control_note.setText("Waiting for the trainer...")
        else:
            self.control_note.setText("")

    def _on_cost(self) -> None:
        cost = self.session.counters.probe_cost
        if cost is None or cost.budget <= 0:
            self.budget_ack.setText("in force: -" if cost is None else "in force: none")
            return
        self.budget_ack.setText(f"in force: {100 * cost.budget:.2g} %")
        if not self._budget_timer.isActive() and not self.budget.hasFocus():
            with QSignalBlocker(self.budget):
                self.budget.setValue(100 * cost.budget)

    def _on_view(self, name: str, value: object) -> None:
        del name, value
        v = self.session.view.values
        with QSignalBlocker(self.statistic):
            self.statistic.setCurrentIndex(max(0, self.statistic.findData(v.statistic)))
        for combo, text in ((self.colormap, v.colormap), (self.theme, v.theme)):
            with QSignalBlocker(combo):
                combo.setCurrentText(text)
        for box, on in ((self.glow, v.glow), (self.points, v.points)):
            with QSignalBlocker(box):
                box.setChecked(on)
        with QSignalBlocker(self.spacing):
            self.spacing.setValue(round(v.layer_spacing * SPACING_STEPS))
        with QSignalBlocker(self.rank_spread):
            self.rank_spread.setChecked(v.rank_spread)
        self._describe_scale()

    def _on_skew(self) -> None:
        if self.session.skew.active != self.rank_spread.isEnabled():  # a job stream began
            self._on_ranks()

    def _on_rank_chosen(self) -> None:
        """A job stream that relays ranks: ask for that rank in full; else show that rank."""
        rank = self.rank.currentData()
        if self.session.ranks.job_ranks:
            self.session.follow_rank(rank)
        else:
            self.session.choose_rank(rank)

    def _on_ranks(self) -> None:
        ranks = self.session.ranks
        job = ranks.job_ranks  # a job stream: every rank of the job can be relayed in full
        with QSignalBlocker(self.rank):
            self.rank.clear()
            self.rank.addItem("merged (whole job)" if job else "merged (mean across ranks)", MERGED)
            for rank in range(job) if job else ranks.ranks:
                self.rank.addItem(f"rank {rank}", rank)
            chosen = ranks.full if job else ranks.choice
            self.rank.setCurrentIndex(max(0, self.rank.findData(chosen)))
        several = len(ranks) > 1 or job > 1
        self.rank.setEnabled(several)
        self.rank_spread.setEnabled(several or self.session.skew.active)
        self._describe_scale()

    def _describe_scale(self) -> None:
        v, scale = self.session.view.values, SCALES[self.session.view.values.statistic]
        spread = v.rank_spread and len(self.session.ranks) > 1
        if v.rank_spread and self.session.skew.active:
            self.scale_note.setText(f"rank skew |z|: 0 .. {Z_FULL:g} sigma")
        else:
            self.scale_note.setText(scale.describe_spread() if spread else scale.describe())

    def _on_connection(self, status: object) -> None:
        del status
        from synapse_desktop.models.connection import Phase

        status = self.session.connection.status
        live = status.phase is Phase.LIVE
        for widget in (self.threshold, self.rate, self.pause, *self.kinds.values()):
            widget.setEnabled(live)
        self.budget.setEnabled(live and bool(status.capabilities & Capability.GOVERNOR))
        modes = live and bool(status.capabilities & Capability.THRESHOLD_MODES)
        self.threshold_mode.setEnabled(modes)
        if live and not modes:
            self.threshold_mode.setToolTip("This trainer takes an absolute threshold only")
