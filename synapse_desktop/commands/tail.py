"""``synapse tail``: connect to a probe and print one line per frame, like ``tail -f``."""

from __future__ import annotations

import argparse
import sys
import time
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from synapse_native.protocol import Frame, Message, MoeRouting, RankSkew

DEFAULT_ADDRESS = "127.0.0.1:9000"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "address",
        nargs="?",
        default=DEFAULT_ADDRESS,
        metavar="HOST:PORT",
        help="the probe to read (default: %(default)s)",
    )
    parser.add_argument("--token", default=None, help="the probe's token, if it requires one")
    parser.add_argument("--count", type=int, default=None, help="stop after this many frames")
    parser.add_argument(
        "--timeout",
        type=float,
        default=5.0,
        help="seconds to wait for the probe (default: %(default)s)",
    )


def parse_address(text: str) -> tuple[str, int]:
    """``HOST:PORT``, ``[IPv6]:PORT``, ``HOST`` or ``:PORT`` (defaults 127.0.0.1 and 9000)."""
    host, port = "127.0.0.1", 9000
    if text.startswith("["):
        bracket = text.find("]")
        if bracket < 0:
            raise ValueError(f"bad address {text!r}: missing ']'")
        host, rest = text[1:bracket], text[bracket + 1 :]
        if rest:
            if not rest.startswith(":"):
                raise ValueError(f"bad address {text!r}")
            port = int(rest[1:])
    elif text.count(":") == 1:
        name, _, number = text.partition(":")
        host = name or host
        port = int(number)
    elif text:
        host = text
    if not 0 < port < 65536:
        raise ValueError(f"port {port} out of range")
    return host, port


def describe(frame: Frame, now_ns: int | None = None) -> str:
    """One line: type, step, seq, lag since the frame was stamped, and what it carries."""
    header = frame.header
    now = time.time_ns() if now_ns is None else now_ns
    lag_ms = (now - header.timestamp_ns) / 1e6
    name = getattr(header.msg_type, "name", str(header.msg_type))
    end = " END" if header.end_of_step else ""
    return (
        f"{name:<19} step={header.step:<7} seq={header.seq:<8} lag={lag_ms:7.1f}ms "
        f"{summary(frame.message)}{end}"
    )


def summary(message: Message) -> str:
    """A short human summary of a message's payload."""
    from synapse_native import protocol as p

    if isinstance(message, p.Hello):
        return (
            f"role={_name(message.role)} name={message.name!r} rank={message.rank}/"
            f"{message.world_size} auth={_name(message.auth)} "
            f"versions={message.version_min}..{message.version_max}"
        )
    if isinstance(message, p.ModelMeta):
        return f"model={message.model_name!r} layers={message.n_layers} sites={len(message.sites)}"
    if isinstance(message, p.LayerSummaryBatch):
        records = message.records
        if len(records) == 0:
            return "sites=0"
        rms = records["rms"]
        return (
            f"sites={len(records)} rms={float(rms.min()):.3g}..{float(rms.max()):.3g} "
            f"max|x|={float(abs(records['max']).max()):.3g} nan={int(records['nan_count'].sum())}"
        )
    if isinstance(message, p.SparseActivations):
        peak = f" peak={float(message.values.max()):.3g}" if len(message.values) else ""
        return (
            f"site={message.site_id} n={len(message.indices)}/{message.n_above} "
            f"threshold={message.threshold:.3g}{peak}"
        )
    if isinstance(message, p.ControlAck):
        s = message.state
        verdict = "applied" if message.applied else f"rejected ({message.error})"
        return (
            f"request={message.request_id} {verdict} threshold={s.threshold:.3g} "
            f"rate={s.rate_hz:.3g}Hz kinds={s.site_kinds:#x} paused={s.paused} top_k={s.top_k}"
        )
    if isinstance(message, p.ProbeStats):
        drops = ",".join(str(int(d)) for d in message.clients["frames_dropped"])
        return (
            f"encoded={message.frames_encoded} dropped={message.frames_dropped} "
            f"queue={message.queue_bytes}/{message.queue_capacity}B "
            f"steps={message.steps_sampled}/{message.steps_seen} "
            f"clients={len(message.clients)} client_drops=[{drops}]"
        )
    if isinstance(message, p.ErrorReport):
        return f"code={_name(message.code)} text={message.text!r}"
    if isinstance(message, p.Control):
        return f"request={message.request_id} fields={int(message.fields):#x}"
    if isinstance(message, p.BlockGradNorms):
        norms = message.norms
        finite = norms[abs(norms) < float("inf")]  # NaN compares false
        span = f" norm={float(finite.min()):.3g}..{float(finite.max()):.3g}" if len(finite) else ""
        return f"layers={len(norms)}{span} nan={int((norms != norms).sum())}"
    if isinstance(message, p.TrainingMetrics):
        items = list(message.values.items())
        shown = " ".join(f"{name}={value:.6g}" for name, value in items[:_METRICS_SHOWN])
        more = f" (+{len(items) - _METRICS_SHOWN} more)" if len(items) > _METRICS_SHOWN else ""
        return f"n={len(items)} {shown}{more}".rstrip()
    if isinstance(message, p.AttentionPattern):
        layers = message.layers
        return (
            f"{len(layers)} pairs x {len(message.tokens)} tokens, "
            f"layers {_span(layers, 'd')}, row {message.sequence}"
        )
    if isinstance(message, p.HeadStats):
        n_layers, n_heads = message.entropy.shape
        return (
            f"{n_layers} layers x {n_heads} heads, entropy {_span(message.entropy, '.2g')} nats, "
            f"max logit {_peak(message.max_logit)}"
        )
    if isinstance(message, p.ResidualTokens):
        n_layers, n_tokens = message.norms.shape
        return f"{n_layers} layers x {n_tokens} tokens, norm {_span(message.norms, '.3g')}"
    if isinstance(message, p.MoeRouting):
        return _routing_summary(message)
    if isinstance(message, p.JobStatus):
        state = _name(message.state)
        lost = f" rank {message.rank}" if message.rank != p.NO_RANK else ""
        return (
            f"job of {message.world_size} ranks: {state}{lost}, "
            f"{message.ranks_reporting} reporting {message.text}".rstrip()
        )
    if isinstance(message, p.RankSkew):
        return _skew_summary(message)
    return ""


def _skew_summary(message: RankSkew) -> str:
    """The site whose outlier rank is farthest from the others."""
    from synapse_native.protocol import SkewStatistic

    records = message.records
    z = np.abs(np.nan_to_num(records["z"].astype(np.float64), nan=-1.0))
    if not len(records) or z.max() < 0:
        return f"{len(records)} sites, no outlier"
    worst = records[int(np.argmax(z))]
    stat = _name(SkewStatistic(worst["statistic"])).lower()
    return (
        f"{len(records)} sites, farthest: rank {worst['rank']} site {worst['site_id']} "
        f"{stat} z={float(worst['z']):+.1f}"
    )


_METRICS_SHOWN = 8  # metrics printed per TRAINING_METRICS line


def _finite(values: npt.NDArray[Any]) -> npt.NDArray[np.float64]:
    flat = np.asarray(values, np.float64).ravel()
    return flat[np.isfinite(flat)]


def _span(values: npt.NDArray[Any], spec: str) -> str:
    """``low-high`` of the finite values (``nan`` when there is none)."""
    finite = _finite(values)
    if not len(finite):
        return "nan"
    low, high = finite.min(), finite.max()
    if spec == "d":
        low, high = int(low), int(high)
    return f"{low:{spec}}" if low == high else f"{low:{spec}}-{high:{spec}}"


def _peak(values: npt.NDArray[Any]) -> str:
    finite = _finite(values)
    return f"{finite.max():.3g}" if len(finite) else "nan"


def _routing_summary(message: MoeRouting) -> str:
    """Layers x experts, top-k, the worst load imbalance (max over layers of std/mean), drops."""
    tokens = np.asarray(message.tokens, np.float64)
    n_layers, n_experts = tokens.shape
    mean = tokens.mean(axis=1)
    cv = np.divide(tokens.std(axis=1), mean, out=np.zeros_like(mean), where=mean > 0)
    idle = int((tokens == 0).sum())
    text = (
        f"{n_layers} layers x {n_experts} experts, top-{message.top_k}, "
        f"max CV {float(cv.max()):.2f}, dropped {int(np.sum(message.dropped, dtype=np.uint64))}"
    )
    return text + (f", {idle} idle" if idle else "")


def _name(value: object) -> str:
    return str(getattr(value, "name", value))


def run(args: argparse.Namespace) -> int:
    from synapse_native.client import ConnectionClosed, PeerError, StreamClient

    try:
        host, port = parse_address(args.address)
    except ValueError as exc:
        print(f"synapse tail: {exc}", file=sys.stderr)
        return 2
    try:
        client = StreamClient.connect(host, port, token=args.token, timeout=args.timeout)
    except (OSError, ValueError) as exc:
        print(f"synapse tail: cannot read {host}:{port}: {exc}", file=sys.stderr)
        return 1
    printed = 0
    try:
        with client:
            frame: Frame | None = client.hello
            while args.count is None or printed < args.count:
                if frame is not None:
                    print(describe(frame), flush=True)
                    printed += 1
                if args.count is None or printed < args.count:
                    frame = client.next_frame(1.0)
    except KeyboardInterrupt:
        pass
    except ConnectionClosed as exc:
        if not exc.clean:  # a fault, not the end of a run: scripts must see it
            print(f"synapse tail: the stream broke: {exc}", file=sys.stderr)
            return 1
        print(f"synapse tail: the probe closed the stream ({exc})", file=sys.stderr)
    except (OSError, PeerError, ValueError) as exc:
        print(f"synapse tail: {exc}", file=sys.stderr)
        return 1
    return 0
