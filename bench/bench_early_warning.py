"""Early warning on the demo: false alarms on a clean run, lead times on injected faults.

Each run trains the tiny demo model with every step measured (``--rate-hz 1000``), its frames
going through the wire codec (``LoopbackServer``) into the app's ``Session``, whose detectors
raise the alerts (``synapse_desktop.models.anomalies``, default thresholds). Prints:

- each clean run (seeds 0..N-1): steps, wall time, and every alert it raised (a false alarm
  each), then the warnings of all clean runs together;
- per injected fault (``--inject KIND@STEP``) and seed: the first alert of each kind from the
  fault on, the first loss spike, and each alert's lead over it, in steps.

Run: ``python bench/bench_early_warning.py [--seeds 4] [--steps 2000] [--fault-step 300]``; the
figures go in docs/APP.md ("Early warning").
"""

from __future__ import annotations

import argparse
import time

from synapse_desktop.models.anomalies import Alert, AlertKind, Severity
from synapse_desktop.models.session import Session
from synapse_probe.demo import train
from synapse_probe.demo.faults import KINDS
from synapse_probe.loopback import LoopbackServer

RUN = ["--preset", "tiny", "--port", "0", "--log-every", "100000", "--rate-hz", "1000"]
AFTER = {"lr": 30, "nan": 30, "logits": 120}  # steps run after each fault


def alerts_of(*extra: str) -> tuple[list[Alert], float]:
    server = LoopbackServer()
    start = time.perf_counter()
    if train.main([*RUN, *extra], server=server) != 0:
        raise SystemExit("the demo failed")
    elapsed = time.perf_counter() - start
    session = Session()
    frames = server.take()
    for i in range(0, len(frames), 256):
        session.apply_frames(frames[i : i + 256])
    return list(session.anomalies.alerts), elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2000, help="steps of each clean run")
    parser.add_argument("--seeds", type=int, default=4, help="runs of each kind: seeds 0..N-1")
    parser.add_argument("--fault-step", type=int, default=300)
    parser.add_argument("--faults", default=",".join(KINDS), help="comma-separated kinds")
    parser.add_argument("--no-clean", action="store_true", help="skip the clean runs")
    args = parser.parse_args()
    seeds = range(args.seeds)
    if not args.no_clean:
        false_alarms = 0
        for seed in seeds:
            alerts, elapsed = alerts_of("--steps", str(args.steps), "--seed", str(seed))
            warnings = [a for a in alerts if a.severity >= Severity.WARNING]
            false_alarms += len(warnings)
            print(
                f"clean run, seed {seed}: {args.steps} steps in {elapsed:.0f} s, "
                f"{len(alerts)} alerts ({len(warnings)} warnings or errors)"
            )
            for alert in alerts:
                print(f"  false alarm: step {alert.step} {alert.kind.value}: {alert.message}")
        print(f"clean runs: {false_alarms} warnings in {len(seeds)} x {args.steps} steps")
    at = args.fault_step
    for kind in filter(None, args.faults.split(",")):
        for seed in seeds:
            report_fault(kind, at, seed)


def report_fault(kind: str, at: int, seed: int) -> None:
    """The first alert of each kind from the fault on, and its lead over the loss spike."""
    steps = at + AFTER[kind]
    alerts, elapsed = alerts_of(
        "--steps", str(steps), "--seed", str(seed), "--inject", f"{kind}@{at}"
    )
    early = [a for a in alerts if a.step < at]
    losses = [a.step for a in alerts if a.kind is AlertKind.LOSS_SPIKE and a.step >= at]
    loss = min(losses) if losses else None
    print(
        f"{kind}@{at}, seed {seed} ({steps} steps, {elapsed:.0f} s): loss spike at "
        f"{loss if loss is not None else 'none'}; {len(early)} alerts before the fault"
    )
    firsts: dict[AlertKind, Alert] = {}
    for alert in alerts:
        if alert.step >= at and alert.kind not in firsts:
            firsts[alert.kind] = alert
    for found, alert in sorted(firsts.items(), key=lambda item: item[1].step):
        lead = f"lead {loss - alert.step:>3} steps" if loss is not None else "no loss spike"
        print(f"  {found.value:<28} step {alert.step:>5}  {lead}  {alert.message}")


if __name__ == "__main__":
    main()
