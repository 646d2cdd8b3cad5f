"""Faults injected into the demo (``--inject KIND@STEP``): each is flagged by its detector before
the loss shows it, and the run is quiet until the fault. The frames go through the wire codec
(``LoopbackServer``) into the app's ``Session``, as a live stream would.

A clean run of 2 000 steps raises no warning. ``bench/bench_early_warning.py`` measures the lead
times and the false alarms of clean runs over several seeds; its figures are in docs/APP.md."""

from __future__ import annotations

import pytest

from synapse_desktop.models.anomalies import Alert, AlertKind, Severity
from synapse_desktop.models.session import Session
from synapse_probe.demo import train
from synapse_probe.loopback import LoopbackServer

FAULT_STEP = 220  # past the detectors' 200-step warm-up
RUN = ["--preset", "tiny", "--port", "0", "--log-every", "1000", "--rate-hz", "1000"]


def run_demo(*extra: str) -> list[Alert]:
    """The alerts the app raises on a tiny demo run, every step measured."""
    server = LoopbackServer()
    assert train.main([*RUN, *extra], server=server) == 0
    session = Session()
    frames = server.take()
    for start in range(0, len(frames), 256):
        session.apply_frames(frames[start : start + 256])
    return list(session.anomalies.alerts)


@pytest.mark.timeout(600)
@pytest.mark.parametrize(
    ("fault", "kind", "steps", "layer"),
    [
        ("lr", AlertKind.UPDATE_SPIKE, 8, None),  # every block's update jumps
        ("nan", AlertKind.NONFINITE, 8, 4),  # the middle block, where the demo injects
        ("logits", AlertKind.LOGIT_GROWTH, 100, 4),
    ],
)
def test_each_fault_is_flagged_before_the_loss_shows_it(
    fault: str, kind: AlertKind, steps: int, layer: int | None
) -> None:
    alerts = run_demo("--inject", f"{fault}@{FAULT_STEP}", "--steps", str(FAULT_STEP + steps))
    assert [a.message for a in alerts if a.step < FAULT_STEP] == []  # quiet until the fault
    warned = [a for a in alerts if a.kind is kind]
    losses = [a.step for a in alerts if a.kind is AlertKind.LOSS_SPIKE]
    assert warned and losses, [a.message for a in alerts]
    first = warned[0]
    assert FAULT_STEP <= first.step < min(losses)
    assert layer is None or first.layer == layer
    print(f"{fault}: {kind.value} at step {first.step}, loss spike at {min(losses)}")


@pytest.mark.timeout(900)
def test_a_clean_run_of_2000_steps_raises_no_warning() -> None:
    """Seed 0 raised a gradient-norm spike (one odd batch) and an attention-logit growth (a
    head's bimodal maximum) before the rules asked for confirmation (docs/APP.md)."""
    alerts = run_demo("--steps", "2000", "--seed", "0")
    assert [f"{a.step} {a.message}" for a in alerts if a.severity >= Severity.WARNING] == []


def test_a_bad_fault_is_refused_in_words(capsys: pytest.CaptureFixture[str]) -> None:
    for text, words in (
        ("boom@300", "KIND one of ('lr', 'nan', 'logits')"),
        ("lr@soon", "the step must be an integer"),
        ("nan@0", "the step must be at least 1"),
    ):
        with pytest.raises(SystemExit) as stopped:
            train.build_parser().parse_args(["--inject", text])
        assert stopped.value.code == 2
        assert words in capsys.readouterr().err
