"""Soak: the simulator, the app under Xvfb and a recorder, side by side for a long run.

Four processes: ``sim`` (the simulator of ``synapse sim`` at its default rate: 32 layers x
attn/mlp/residual, 10 steps/s), ``app`` (the desktop app's ``MainWindow``, shown under Xvfb,
connected to the simulator), ``viewer`` (a ``StreamClient``, as ``synapse tail`` reads) and
``recorder`` (``synapse record`` writing an MCAP file). The first three are this script in a
role; the simulator starts stepping once all clients are in. Every ``--interval`` seconds the
resident memory, open file descriptors and threads of each are sampled from ``/proc``.

At the end the simulator stops, lets its queues empty and writes its per-client counters; the
clients then report what they received. Pass criteria, per process and per client:

- memory: resident growth after the warm-up (a least-squares slope) below 1 MiB per 10 minutes,
  judged when at least 10 minutes follow the warm-up (shorter runs report it only);
- file descriptors and threads: the count held most of the second half no more than the first
  half's (short-lived helper threads come and go; a leak climbs and stays);
- counters: frames the probe sent to a client = frames the client received after its handshake,
  and frames the probe dropped for it = the gaps in the sequence numbers it saw.

Run (CI runs ``--minutes 3``; docs/RELIABILITY.md has the figures of 30-minute runs):
  python bench/soak.py --minutes 30 --warmup 600 --frame-log-mb 32 --json soak.json
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from statistics import mode
from typing import Any

HANDSHAKE_FRAMES = 3  # HELLO, MODEL_META, CONTROL_ACK: written before the pump owns the socket
STATUS_EVERY_S = 1.0
GROWTH_LIMIT_MIB = 1.0  # per 10 minutes, after the warm-up
MEMORY_WINDOW_S = 600.0  # memory growth is judged over at least this much steady time
XVFB = ["xvfb-run", "-a", "-s", "-screen 0 1600x1200x24"]
GL_ENV = {"LIBGL_ALWAYS_SOFTWARE": "1", "QT_QPA_PLATFORM": "xcb"}


def write_status(path: Path, status: dict[str, Any]) -> None:
    """Replace ``path`` with ``status`` as JSON, atomically (readers never see half a file)."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"pid": os.getpid(), **status}))
    tmp.replace(path)


def read_status(path: Path) -> dict[str, Any] | None:
    try:
        return dict(json.loads(path.read_text()))
    except (OSError, ValueError):
        return None


# -- roles ----------------------------------------------------------------------------------------


def role_sim(args: argparse.Namespace) -> int:
    """The simulator; on SIGTERM it stops, waits for its client queues to empty, reports."""
    from synapse_serve.signals import set_on_signals
    from synapse_serve.sim import SimOptions, Simulator

    stop = threading.Event()
    set_on_signals(stop, (signal.SIGTERM,))
    status = Path(args.status)
    with Simulator(SimOptions(port=0, announce=False, layers=args.layers)) as sim:
        host, port = sim.server.address
        write_status(status, {"address": f"{host}:{port}"})
        # Every client in before the first step: each counts the whole stream from its start.
        deadline = time.monotonic() + 120.0
        while sim.server.client_count < args.clients and time.monotonic() < deadline:
            if stop.wait(0.1):
                return 1
        write_status(status, {"address": f"{host}:{port}", "started": True})
        sim.run(stop)
        deadline = time.monotonic() + 10.0
        while time.monotonic() < deadline:
            stats = sim.server.sender_stats()
            if stats is None or (
                stats.ring_used_bytes == 0 and all(c.bytes_queued == 0 for c in stats.clients)
            ):
                break
            time.sleep(0.05)
        stats = sim.server.sender_stats()
        clients = [] if stats is None else [dataclasses.asdict(c) for c in stats.clients]
        write_status(
            status,
            {
                "address": f"{host}:{port}",
                "steps": sim.step,
                "dropped_at_source": sim.server.frames_dropped_at_source,
                "clients": clients,
                "final": True,
            },
        )
    return 0


def role_app(args: argparse.Namespace) -> int:
    """The desktop app's main window, connected to the simulator; reports its counters."""
    from PySide6.QtCore import QTimer

    from synapse_desktop.commands.app import qt_application
    from synapse_desktop.heap_tuning import fix_mmap_threshold
    from synapse_desktop.net.endpoint import parse_endpoints
    from synapse_desktop.qt.main_window import MainWindow

    fix_mmap_threshold()  # as `synapse app` does
    qt_app = qt_application()
    window = MainWindow()
    window.show()
    if args.frame_log_mb:  # the timeline's in-memory frame log, bounded; full sooner when small
        window.recordings.controller.log.max_bytes = int(args.frame_log_mb * (1 << 20))
    window.connect_to(parse_endpoints([args.connect]), None)
    status = Path(args.status)
    counters = window.session.counters

    def report() -> None:
        write_status(
            status,
            {
                "frames": counters.frames,
                "bytes": counters.bytes,
                "seq_gaps": counters.seq_gaps,
                "step": counters.step,
            },
        )

    timer = QTimer()
    timer.timeout.connect(report)
    timer.start(int(STATUS_EVERY_S * 1000))
    signal.signal(signal.SIGTERM, lambda *_: qt_app.quit())
    # Python runs signal handlers between bytecodes only: a timer wakes it up now and then.
    wake = QTimer()
    wake.timeout.connect(lambda: None)
    wake.start(200)
    code = int(qt_app.exec())
    window.close()
    return code


def role_viewer(args: argparse.Namespace) -> int:
    """A ``StreamClient`` (as ``synapse tail`` uses) that reads every frame and counts them."""
    from synapse_native.client import ConnectionClosed, StreamClient
    from synapse_serve.signals import set_on_signals

    stop = threading.Event()
    set_on_signals(stop, (signal.SIGTERM,))
    host, _, port = args.connect.rpartition(":")
    status = Path(args.status)
    frames, gaps, last_seq, last_report = 1, 0, 0, 0.0  # the HELLO is read by connect
    with StreamClient.connect(host, int(port), timeout=10.0) as client:
        while not stop.is_set():
            try:
                frame = client.next_frame(0.2)
            except ConnectionClosed:
                break
            if frame is not None:
                frames += 1
                seq = frame.header.seq
                if seq:
                    gaps += max(0, seq - last_seq - 1) if last_seq else 0
                    last_seq = seq
            if time.monotonic() - last_report >= STATUS_EVERY_S:
                write_status(status, {"frames": frames, "seq_gaps": gaps})
                last_report = time.monotonic()
    write_status(status, {"frames": frames, "seq_gaps": gaps, "final": True})
    return 0


# -- the harness ----------------------------------------------------------------------------------


def proc_sample(pid: int) -> dict[str, int] | None:
    """Resident memory (KiB), open file descriptors and threads of ``pid``; None if gone."""
    try:
        fields = dict(
            line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
        )
        fds = len(os.listdir(f"/proc/{pid}/fd"))
    except (OSError, ValueError):
        return None
    return {
        "rss_kib": int(fields["VmRSS"].split()[0]),
        "fds": fds,
        "threads": int(fields["Threads"]),
    }


def slope_mib_per_10min(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of (seconds, KiB) points, in MiB per 10 minutes."""
    n = len(points)
    if n < 2:
        return 0.0
    mean_t = sum(t for t, _ in points) / n
    mean_v = sum(v for _, v in points) / n
    var = sum((t - mean_t) ** 2 for t, _ in points)
    if var == 0:
        return 0.0
    cov = sum((t - mean_t) * (v - mean_v) for t, v in points)
    return cov / var * 600.0 / 1024.0


def wait_for(predicate: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise RuntimeError(f"soak: {what} not within {timeout:g} s")


def frames_in(path: Path, least: int) -> dict[str, Any] | None:
    """The status at ``path`` once it counts at least ``least`` frames."""
    status = read_status(path)
    return status if status is not None and status.get("frames", 0) >= least else None


def synapse_command() -> list[str]:
    """The ``synapse`` console command of this environment."""
    return [sys.executable, "-m", "synapse_desktop"]


def recorded(path: Path) -> dict[str, Any]:
    """What ``synapse record`` wrote, counted as the other clients count what they received."""
    from synapse_native.recording import open_recording

    frames = gaps = last = 0
    with open_recording(path) as recording:
        seqs = []
        for _, frame in recording.frames():
            frames += 1
            seq = int.from_bytes(frame[12:16], "little")
            if seq:
                seqs.append(seq)
    for seq in sorted(seqs):
        gaps += max(0, seq - last - 1) if last else 0
        last = seq
    return {"frames": frames, "seq_gaps": gaps}


def spawn(role: str, workdir: Path, extra: list[str], *, display: bool = False) -> subprocess.Popen:
    command = [sys.executable, __file__, "--role", role, "--status", str(workdir / f"{role}.json")]
    env = dict(os.environ)
    if display:
        command = XVFB + command
        env.update(GL_ENV)
    log = open(workdir / f"{role}.log", "wb")  # noqa: SIM115 - closed with the process
    return subprocess.Popen(command + extra, stdout=log, stderr=subprocess.STDOUT, env=env)


def harness(args: argparse.Namespace) -> int:
    workdir = Path(tempfile.mkdtemp(prefix="synapse-soak-"))
    duration = args.minutes * 60.0
    warmup = min(args.warmup, duration / 3)
    procs: dict[str, subprocess.Popen] = {}
    pids: dict[str, int] = {}
    try:
        procs["sim"] = spawn("sim", workdir, ["--layers", str(args.layers), "--clients", "3"])
        sim_status = wait_for(lambda: read_status(workdir / "sim.json"), 60, "the simulator")
        address = sim_status["address"]
        pids["sim"] = procs["sim"].pid
        # One at a time, so that the probe numbers its clients in this order.
        log_mb = ["--frame-log-mb", str(args.frame_log_mb)] if args.frame_log_mb else []
        procs["app"] = spawn("app", workdir, ["--connect", address, *log_mb], display=True)
        app = wait_for(lambda: frames_in(workdir / "app.json", HANDSHAKE_FRAMES), 120, "app")
        pids["app"] = int(app["pid"])
        procs["viewer"] = spawn("viewer", workdir, ["--connect", address])
        viewer = wait_for(lambda: frames_in(workdir / "viewer.json", 1), 60, "viewer")
        pids["viewer"] = int(viewer["pid"])
        recording = workdir / "soak.mcap"
        procs["recorder"] = subprocess.Popen(
            [*synapse_command(), "record", address, "-o", str(recording), "--quiet"],
            stdout=open(workdir / "recorder.log", "wb"),  # noqa: SIM115 - closed with the process
            stderr=subprocess.STDOUT,
        )
        pids["recorder"] = procs["recorder"].pid
        wait_for(lambda: (read_status(workdir / "sim.json") or {}).get("started"), 60, "3 clients")
        print(f"soak: {args.minutes:g} min, sampling every {args.interval:g} s in {workdir}")
        samples: dict[str, list[tuple[float, dict[str, int]]]] = {k: [] for k in pids}
        start = time.monotonic()
        while (elapsed := time.monotonic() - start) < duration:
            for name, pid in pids.items():
                sample = proc_sample(pid)
                if sample is None:
                    raise RuntimeError(f"soak: the {name} process ended early (see {workdir})")
                samples[name].append((elapsed, sample))
            line = "  ".join(
                f"{n}: {s[-1][1]['rss_kib'] / 1024:.1f} MiB {s[-1][1]['fds']} fd "
                f"{s[-1][1]['threads']} thr"
                for n, s in samples.items()
            )
            print(f"[{elapsed / 60:5.1f} min] {line}", flush=True)
            time.sleep(max(0.0, min(args.interval, duration - elapsed)))
        procs["sim"].send_signal(signal.SIGTERM)
        procs["sim"].wait(30)
        sim_final = read_status(workdir / "sim.json") or {}
        time.sleep(3.0)  # the clients read the rest of their streams
        for name in ("viewer", "recorder"):
            procs[name].send_signal(signal.SIGTERM)
            procs[name].wait(30)
        clients = {n: read_status(workdir / f"{n}.json") or {} for n in ("app", "viewer")}
        clients["recorder"] = recorded(recording)
    finally:
        if "app" in pids:  # xvfb-run does not pass a SIGTERM on: the app would outlive it
            with contextlib.suppress(ProcessLookupError):
                os.kill(pids["app"], signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                procs["app"].wait(15)  # then xvfb-run stops its X server itself
        for proc in procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(15)
                except subprocess.TimeoutExpired:
                    proc.kill()
    report = evaluate(samples, warmup, sim_final, clients)
    report["minutes"] = args.minutes
    report["steps"] = sim_final.get("steps")
    print(json.dumps(report, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))
    if report["ok"]:
        shutil.rmtree(workdir, ignore_errors=True)
    else:
        print(f"soak: FAILED; logs and status files kept in {workdir}")
    return 0 if report["ok"] else 1


def evaluate(
    samples: dict[str, list[tuple[float, dict[str, int]]]],
    warmup: float,
    sim_final: dict[str, Any],
    clients: dict[str, dict[str, Any]],
) -> dict[str, Any]:
    """Memory slopes, fd and thread stability, and the per-client counter reconciliation."""
    report: dict[str, Any] = {"processes": {}, "clients": {}}
    ok = True
    for name, series in samples.items():
        steady = [(t, s) for t, s in series if t >= warmup] or series[-1:]
        growth = slope_mib_per_10min([(t, s["rss_kib"]) for t, s in steady])
        first, last = steady[0][1], steady[-1][1]
        entry = {
            "rss_mib_start": round(first["rss_kib"] / 1024, 1),
            "rss_mib_end": round(last["rss_kib"] / 1024, 1),
            "growth_mib_per_10min": round(growth, 3),
            "fds": [first["fds"], last["fds"], max(s["fds"] for _, s in steady)],
            "threads": [first["threads"], last["threads"], max(s["threads"] for _, s in steady)],
            "samples": len(series),
        }
        # Stable: the count the second half of the run mostly holds is no more than the first
        # half's (the app's short-lived helper threads, with their fds, come and go for a few
        # samples at any time; a leak climbs and stays).
        half = len(steady) // 2
        judged = steady[-1][0] - steady[0][0] >= MEMORY_WINDOW_S
        entry["memory_judged"] = judged
        entry["ok"] = (growth < GROWTH_LIMIT_MIB or not judged) and all(
            mode(s[key] for _, s in steady[half:]) <= mode(s[key] for _, s in steady[: half + 1])
            for key in ("fds", "threads")
        )
        ok &= entry["ok"]
        report["processes"][name] = entry
    # Clients connected in this order, and the pump numbers them in connection order.
    probe_side = sorted(sim_final.get("clients", []), key=lambda c: c["client_id"])
    at_source = int(sim_final.get("dropped_at_source", 0))
    for (name, seen), sent in zip(clients.items(), probe_side, strict=False):
        delivered = int(seen.get("frames", 0)) - HANDSHAKE_FRAMES
        entry = {
            "probe_sent": sent["frames_sent"],
            "probe_dropped": sent["frames_dropped"],
            "dropped_at_source": at_source,
            "delivered": delivered,
            "seq_gaps": seen.get("seq_gaps"),
        }
        entry["ok"] = delivered == sent["frames_sent"] and seen.get("seq_gaps") == (
            sent["frames_dropped"] + at_source
        )
        ok &= entry["ok"]
        report["clients"][name] = entry
    if len(probe_side) != len(clients):
        report["clients_mismatch"] = f"{len(probe_side)} clients at the probe, {len(clients)} here"
        ok = False
    report["ok"] = ok
    return report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--interval", type=float, default=10.0, help="seconds between samples")
    parser.add_argument("--warmup", type=float, default=120.0, help="seconds left out of slopes")
    parser.add_argument("--layers", type=int, default=32)
    parser.add_argument("--json", default=None, help="also write the report here")
    parser.add_argument("--role", choices=["sim", "app", "viewer"], default=None)
    parser.add_argument("--status", default=None)
    parser.add_argument("--connect", default=None)
    parser.add_argument("--clients", type=int, default=3, help="(sim) wait for this many")
    parser.add_argument(
        "--frame-log-mb",
        type=float,
        default=None,
        help="the app's in-memory frame log budget (default: the app's own, 512 MiB, which at "
        "the simulator's rate takes over an hour to fill)",
    )
    args = parser.parse_args()
    if args.role is None:
        return harness(args)
    return {"sim": role_sim, "app": role_app, "viewer": role_viewer}[args.role](args)


if __name__ == "__main__":
    sys.exit(main())
