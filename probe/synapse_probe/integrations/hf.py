"""``SynapseCallback``: the probe in a Hugging Face ``transformers.Trainer``.

```python
trainer = Trainer(model, args, train_dataset=data, callbacks=[SynapseCallback(port=9000)])
```

The callback attaches the probe to the trainer's model when training begins (or uses the probe
it was given), numbers the probe's steps like the trainer, streams the trainer's logs (loss,
learning rate, gradient norm...) as training metrics, and closes the probe it attached when
training ends. The probe it attaches names the sampled tokens with the trainer's tokenizer
(``processing_class``), unless ``tokenizer=`` is among the options.
"""

from __future__ import annotations

import numbers
from typing import Any

import torch
from torch import nn
from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments

from synapse_native.protocol import METRIC_NAME_SIZE

from ..probe import Probe, attach

# Trainer log keys sent under another name (the app knows "loss", "lr" and "grad_norm").
RENAMED = {"learning_rate": "lr"}


class SynapseCallback(TrainerCallback):
    """Streams a ``Trainer``'s activations and logged metrics to Synapse.

    Pass an attached ``probe``, or ``attach()`` options (``port=``, ``grads=``, ...) with which
    the callback attaches a probe of its own to the trainer's model in ``on_train_begin`` and
    closes it in ``on_train_end``.
    """

    def __init__(self, probe: Probe | None = None, **attach_options: Any) -> None:
        if probe is not None and attach_options:
            raise TypeError("pass either a probe or attach() options, not both")
        self.probe = probe
        self._attach_options = attach_options
        self._owns_probe = False

    def on_train_begin(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        model: nn.Module | None = None,
        **kwargs: Any,
    ) -> None:
        """Attach to the trainer's model unless a probe was given."""
        if self.probe is not None and not self._owns_probe:
            return
        if self.probe is not None:
            self.probe.close()  # a previous train() that ended without on_train_end
        if model is None:
            raise ValueError("SynapseCallback: the trainer passed no model to attach to")
        options = dict(self._attach_options)
        if "tokenizer" not in options:
            options["tokenizer"] = text_tokenizer(
                kwargs.get("processing_class") or kwargs.get("tokenizer")
            )
        self.probe = attach(model, **options)
        self._owns_probe = True

    def on_step_begin(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        """Start the probe's step: the number the trainer gives this step once it ends, which is
        the step its loss is logged under (``global_step`` counts completed steps)."""
        if self.probe is not None:
            self.probe.step(state.global_step + 1)

    def on_log(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        logs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        """Send the numbers of ``logs`` as the training metrics of ``state.global_step``."""
        if self.probe is None or not logs:
            return
        values = metric_values(logs)
        if values:
            self.probe.log_metrics(step=state.global_step, **values)

    def on_train_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        """Close the probe the callback attached (a given probe stays open)."""
        if self.probe is not None and self._owns_probe:
            self.probe.close()
            self._owns_probe = False


def metric_values(logs: dict[str, Any]) -> dict[str, float | torch.Tensor]:
    """The numeric entries of a Trainer log, named as TRAINING_METRICS can carry them.

    ``learning_rate`` becomes ``lr``; other names are cut to 24 bytes of UTF-8 (whole
    characters). Values may be NaN or infinite; strings, booleans and tensors of more than one
    element are left out.
    """
    values: dict[str, float | torch.Tensor] = {}
    for key, value in logs.items():
        if isinstance(value, torch.Tensor):
            if value.numel() != 1 or value.is_complex() or value.dtype == torch.bool:
                continue
        elif isinstance(value, bool) or not isinstance(value, numbers.Real):
            continue
        else:
            value = float(value)
        name = RENAMED.get(key, key).replace("\0", "")
        name = name.encode("utf-8")[:METRIC_NAME_SIZE].decode("utf-8", "ignore")
        if name and name != "step":  # the step travels as log_metrics' own argument
            values.setdefault(name, value)
    return values


def text_tokenizer(processing_class: Any) -> Any:
    """The tokenizer of a trainer's ``processing_class`` (itself, or a multimodal processor's
    ``tokenizer``); None when it has none (an image processor, say)."""
    for candidate in (processing_class, getattr(processing_class, "tokenizer", None)):
        if callable(getattr(candidate, "decode", None)) and callable(
            getattr(candidate, "convert_ids_to_tokens", None)
        ):
            return candidate
    return None
