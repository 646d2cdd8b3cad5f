"""Which site the pointer is over and which one the user picked."""

from __future__ import annotations

from synapse_desktop.models.signal import Signal


class Selection:
    """Site indices (-1: none); ``hovered_changed`` and ``selected_changed`` carry the index."""

    def __init__(self) -> None:
        self.hovered_changed = Signal()
        self.selected_changed = Signal()
        self.hovered = -1
        self.hovered_neuron = -1
        self.selected = -1

    def hover(self, index: int, neuron: int = -1) -> None:
        """The pointer is over site ``index`` (and its neuron ``neuron``), or nothing (-1)."""
        if (index, neuron) != (self.hovered, self.hovered_neuron):
            self.hovered, self.hovered_neuron = index, neuron
            self.hovered_changed.emit(index)

    def select(self, index: int) -> None:
        if index != self.selected:
            self.selected = index
            self.selected_changed.emit(index)
