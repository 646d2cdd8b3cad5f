"""The app's whole state, fed by decoded frames alone (``apply_frames``), whatever their source."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from synapse_desktop.models.actions import ActionsModel
from synapse_desktop.models.anomalies import AlertKind, Anomalies, Severity
from synapse_desktop.models.attention import AttentionPatterns, HeadStatsHistory
from synapse_desktop.models.captures import CaptureModel
from synapse_desktop.models.connection import ConnectionState
from synapse_desktop.models.control import ControlModel
from synapse_desktop.models.counters import Counters
from synapse_desktop.models.grad_norms import GradNorms
from synapse_desktop.models.history import History
from synapse_desktop.models.metrics import DEFAULT_CAPACITY as METRICS_CAPACITY
from synapse_desktop.models.metrics import MetricsHistory
from synapse_desktop.models.optimizer import OptimizerHistory
from synapse_desktop.models.ordering import SEQ_MODULUS, SeqGuard, Skipped, Verdict
from synapse_desktop.models.ranks import MERGED, Ranks
from synapse_desktop.models.residual_tokens import ResidualTokensModel
from synapse_desktop.models.routing import RoutingHistory
from synapse_desktop.models.selection import Selection
from synapse_desktop.models.signal import Signal
from synapse_desktop.models.skew import RankSkewModel, SkewAlert
from synapse_desktop.models.sparse import LatestSparse, SparsePoints, SparseRun
from synapse_desktop.models.stats import LatestStats
from synapse_desktop.models.store import SiteStore, Store
from synapse_desktop.models.topology import Topology
from synapse_desktop.models.view_settings import ViewSettings
from synapse_native.protocol import (
    NO_FULL_RANK,
    ActionList,
    ActionResult,
    AttentionPattern,
    BlockGradNorms,
    Capability,
    CaptureDone,
    ControlAck,
    ErrorReport,
    Frame,
    Header,
    HeadStats,
    Hello,
    JobState,
    JobStatus,
    LayerSummaryBatch,
    ModelMeta,
    MoeRouting,
    OptimizerStats,
    ProbeCost,
    ProbeStats,
    RankSkew,
    ResidualTokens,
    Role,
    SparseActivations,
    SummaryFlag,
    TrainingMetrics,
)


class Session:
    """Topology, latest statistics, history, sparse points, control, counters and view state.

    Model signals fire once per ``apply_frames`` batch, after every frame of it is applied;
    ``flushed`` fires after them (a view can gather its work per batch and push it once).
    """

    def __init__(
        self, history_capacity: int = 1024, metrics_capacity: int = METRICS_CAPACITY
    ) -> None:
        """``history_capacity``: steps of per-step history kept; ``metrics_capacity``: steps
        of each training metric kept."""
        self.topology = Topology()
        self.stats = LatestStats()
        self.history = History(history_capacity)
        self.grad_norms = GradNorms(history_capacity)
        self.optimizer = OptimizerHistory(history_capacity)  # OPTIMIZER_STATS per step
        self.metrics = MetricsHistory(metrics_capacity)
        self.attention = AttentionPatterns()  # the latest pattern per (rank, layer, head)
        self.head_stats = HeadStatsHistory(history_capacity)
        self.routing = RoutingHistory()  # MoE router decisions per step, per rank and merged
        self.residual_tokens = ResidualTokensModel(self._attention_tokens)
        self.sparse = LatestSparse()
        self.ranks = Ranks(self.stats, self.history, self.sparse)  # fills the three above
        self.control = ControlModel()
        self.captures = CaptureModel()  # captures asked of the trainer and their answers
        self.actions = ActionsModel()  # the trainer's own actions (probe.on_request)
        self.counters = Counters()
        self.connection = ConnectionState()
        self.selection = Selection()
        self.anomalies = Anomalies(self.topology)  # alerts from the activation summaries
        self.skew = RankSkewModel(self.topology)  # a job stream's rank skew and health
        self.skew.alerted.connect(self._skew_alert)
        self.skew.status_changed.connect(self._job_status_alert)
        self.view = ViewSettings()
        self.peer_error = Signal()  # (text): the trainer sent ERROR
        self.flushed = Signal()  # (): the model signals of a batch have all fired
        self.data_reset = Signal()  # (): reset_data forgot every value (a new run), mid-batch
        self._seq = SeqGuard()
        self._site_ids = np.zeros(0, np.int64)
        self._max_steps: dict[int, int] = {}  # per rank, the newest step it sent
        self._new_streams: set[int] = set()  # ranks whose HELLO came and no data yet
        self._trainer_dropped: dict[int, int] = {}  # per rank, from its PROBE_STATS
        # The stores of a run's data, in flush order: the counters (kept across runs) and the
        # anomalies (a new run resets their detectors too) come after them.
        self._stores: tuple[Store, ...] = (
            self.ranks,  # first: it brings the merge shown by stats, history and sparse up to date
            self.stats,
            self.history,
            self.grad_norms,
            self.optimizer,
            self.metrics,
            self.attention,
            self.head_stats,
            self.routing,
            self.residual_tokens,
            self.sparse,
            self.skew,
        )
        self._handlers: dict[type, Callable[[Header, Any], bool]] = {
            LayerSummaryBatch: self._on_summaries,
            SparseActivations: self._on_sparse,
            BlockGradNorms: self._on_grad_norms,
            TrainingMetrics: self._on_metrics,
            AttentionPattern: self._on_attention,
            HeadStats: self._on_head_stats,
            OptimizerStats: self._on_optimizer,
            MoeRouting: self._on_routing,
            ResidualTokens: self._on_residual_tokens,
            ModelMeta: self._on_model_meta,
            ControlAck: self._on_control_ack,
            ProbeStats: self._on_probe_stats,
            ProbeCost: self._on_probe_cost,
            ErrorReport: self._on_error,
            CaptureDone: self._on_capture_done,
            ActionList: self._on_action_list,
            ActionResult: self._on_action_result,
            RankSkew: self._on_rank_skew,
            JobStatus: self._on_job_status,
        }
        self.topology.changed.connect(self._follow_topology)

    def apply_frame(self, frame: Frame) -> None:
        """Apply one frame (and notify)."""
        self.apply_frames((frame,))

    def apply_frames(
        self, frames: Iterable[Frame | Skipped | SparseRun], now_ns: int | None = None
    ) -> None:
        """Apply a batch of frames in order, then notify listeners once.

        A ``Skipped`` stands for a frame the reader discarded to keep up: it advances the
        sequence numbers (so it is not mistaken for a trainer drop) and counts as an app drop.
        A ``SparseRun`` stands for consecutive sparse frames decoded together.
        """
        now_ns = time.time_ns() if now_ns is None else now_ns
        newest_ts = 0
        for frame in frames:
            if isinstance(frame, Skipped):
                self._seq.check(frame.rank, frame.seq)
                self.counters.app_dropped += 1
                self.counters.mark()
            elif isinstance(frame, SparseRun):
                newest_ts = max(newest_ts, self._sparse_run(frame))
            elif self._apply(frame):
                newest_ts = max(newest_ts, frame.header.timestamp_ns)
        if newest_ts:
            self.counters.lag(max(0.0, (now_ns - newest_ts) / 1e6))
        self.counters.seq_gaps = self._seq.gaps
        self.flush()

    def flush(self) -> None:
        """Emit the pending change signals of every model, then ``flushed``."""
        for store in self._stores:
            store.flush()
        self.counters.flush()
        self.anomalies.flush()
        self.flushed.emit()

    def reset_data(self) -> None:
        """Forget statistics, history and points (a new training run)."""
        for store in self._stores:
            store.clear()
        self.anomalies.reset()  # its clear() keeps the detectors' state (the alerts panel's)
        self._max_steps.clear()
        self.data_reset.emit()

    def rewind(self) -> None:
        """Forget the data and the stream's place (sequence numbers, steps, drops) so that
        frames already seen can be applied again: a seek in a replay (``models.replay``)."""
        self.reset_data()
        self._seq = SeqGuard()
        self._new_streams.clear()
        self.counters.step = -1
        self.counters.seq_gaps = self.counters.app_dropped = self.counters.stale = 0
        self.counters.costs.clear()
        self.counters.mark()

    def forgive_gaps(self, frames: int) -> None:
        """``frames`` left out of the stream on purpose (a replay's window) were no drops."""
        self._seq.gaps = max(0, self._seq.gaps - frames)
        self.counters.seq_gaps = self._seq.gaps

    def follow_rank(self, rank: int) -> None:
        """On a job stream: ask its serving rank for ``rank``'s full frames and show them
        (``ranks.MERGED``: none; the merged statistics stay either way), and notify."""
        self.ranks.show_full(rank)
        self.control.request(full_rank=NO_FULL_RANK if rank == MERGED else rank)
        self.flush()

    def choose_rank(self, rank: int) -> None:
        """Show one rank's data, or the mean across ranks (``ranks.MERGED``), and notify."""
        self.ranks.choose(rank)
        self.flush()

    def _apply(self, frame: Frame) -> bool:
        """Apply one frame; returns whether it carried fresh data."""
        header, message = frame.header, frame.message
        if isinstance(message, Hello):  # before the sequence check: it restarts the numbering
            return self._on_hello(header, message)
        if self._seq.check(header.rank, header.seq) is not Verdict.NEW:
            self.counters.stale += 1
            self.counters.mark()
            return False
        handler = self._handlers.get(type(message))
        return handler is not None and handler(header, message)

    # -- one handler per message type: whether the frame carried fresh data ------------------------

    def _on_hello(self, header: Header, message: Hello) -> bool:
        if message.role == Role.TRAINER:
            self._seq.reset(header.rank)
            if not message.capabilities & Capability.ACTIONS:
                self.actions.offer(())  # a trainer without actions (its ACTION_LIST: later)
            self.counters.costs.pop(header.rank, None)  # a new probe: its cost is unknown
            self.ranks.see(header.rank)
            self._new_streams.add(header.rank)
            if message.capabilities & Capability.RANK_RELAY:
                self.ranks.set_job(message.world_size, header.rank)
        return False

    def _on_summaries(self, header: Header, message: LayerSummaryBatch) -> bool:
        records = message.records
        records = records[(records["flags"] & int(SummaryFlag.GRADIENT)) == 0]
        if len(records) == 0:
            return True
        step, rank = header.step, header.rank
        self._check_new_run(step, rank)
        ids = records["site_id"].astype(np.int64)
        indices = self.topology.indices_of(ids)
        if (indices < 0).any():
            self.topology.ensure(ids[indices < 0].tolist())
            indices = self.topology.indices_of(ids)
        self.ranks.summaries(rank, indices, records, step)
        self.anomalies.feed(rank, indices, records, step)
        self.counters.step = max(self.counters.step, step)
        self.counters.mark()
        return True

    def _on_sparse(self, header: Header, message: SparseActivations) -> bool:
        self._check_new_run(header.step, header.rank)
        index = self.topology.index_of(message.site_id)
        if index < 0:
            self.topology.ensure([message.site_id])
            index = self.topology.index_of(message.site_id)
        points = SparsePoints(
            header.step, message.threshold, message.n_above, message.indices, message.values
        )
        self.ranks.sparse(header.rank, index, points)
        return True

    def _on_grad_norms(self, header: Header, message: BlockGradNorms) -> bool:
        self._check_new_run(header.step, header.rank)
        self.grad_norms.append(header.step, message.norms)
        self.anomalies.feed_grad_norms(header.rank, header.step, message.norms)
        return True

    def _on_metrics(self, header: Header, message: TrainingMetrics) -> bool:
        self._check_new_run(header.step, header.rank)
        self.metrics.apply(message, header.step, header.rank)
        self.anomalies.feed_metrics(header.rank, header.step, message.values)
        return True

    def _on_attention(self, header: Header, message: AttentionPattern) -> bool:
        self._check_new_run(header.step, header.rank)
        self.attention.apply(message, header.step, header.rank, header.timestamp_ns)
        return True

    def _on_head_stats(self, header: Header, message: HeadStats) -> bool:
        self._check_new_run(header.step, header.rank)
        self.head_stats.apply(message, header.step, header.rank)
        self.anomalies.feed_head_stats(header.rank, header.step, message.layers, message.max_logit)
        return True

    def _on_optimizer(self, header: Header, message: OptimizerStats) -> bool:
        self._check_new_run(header.step, header.rank)
        self.optimizer.append(header.rank, header.step, message)
        m = message
        self.anomalies.feed_optimizer(
            header.rank, header.step, m.layers, m.update_ratio, m.grad_norm, m.v_below_g2
        )
        return True

    def _on_routing(self, header: Header, message: MoeRouting) -> bool:
        self._check_new_run(header.step, header.rank)
        m = message
        if self.routing.append(
            header.rank, header.step, m.layers, m.tokens, m.probs, m.dropped, m.top_k
        ):
            self.anomalies.feed_routing(header.rank, header.step, m.layers, m.tokens, m.dropped)
        return True

    def _on_residual_tokens(self, header: Header, message: ResidualTokens) -> bool:
        self._check_new_run(header.step, header.rank)
        self.residual_tokens.take(header.rank, header.step, message.layers, message.norms)
        return True

    def _on_model_meta(self, header: Header, message: ModelMeta) -> bool:
        if (
            header.rank in self._new_streams
            and self.topology.from_meta
            and message.model_name != self.topology.model_name
        ):
            self.reset_data()  # a restarted trainer with another model: a new run
        self.topology.set_meta(message.model_name, message.sites)
        return False

    def _on_control_ack(self, header: Header, message: ControlAck) -> bool:
        self.control.acknowledge(message)
        return False

    def _on_probe_stats(self, header: Header, message: ProbeStats) -> bool:
        self._trainer_dropped[header.rank] = _dropped_for_us(message)
        self.counters.trainer_dropped = sum(self._trainer_dropped.values())
        self.counters.mark()
        return False

    def _on_probe_cost(self, header: Header, message: ProbeCost) -> bool:
        self.counters.cost(header.rank, message)
        return False

    def _on_error(self, header: Header, message: ErrorReport) -> bool:
        self.peer_error.emit(message.text)
        return False

    def _on_capture_done(self, header: Header, message: CaptureDone) -> bool:
        self.captures.take(message)
        return False

    def _on_action_list(self, header: Header, message: ActionList) -> bool:
        self.actions.offer(message.names)
        return False

    def _on_action_result(self, header: Header, message: ActionResult) -> bool:
        self.actions.take(message)
        return False

    def _on_rank_skew(self, header: Header, message: RankSkew) -> bool:
        self.skew.apply(message, header.step)
        return True

    def _on_job_status(self, header: Header, message: JobStatus) -> bool:
        self.skew.take_status(message)
        return False

    # -- sparse runs and upkeep --------------------------------------------------------------------

    def _sparse_run(self, run: SparseRun) -> int:
        """Apply a run of sparse frames (as ``_apply`` would, one by one); returns the newest
        timestamp among the fresh ones (0: none).

        The usual run, one source numbering its frames consecutively about sites already
        known, is judged in one go; any other is applied frame by frame.
        """
        n = len(run)
        seqs, ranks = run.seq, run.rank
        first = seqs[0]
        if (
            first
            and first + n <= SEQ_MODULUS
            and list(seqs) == list(range(first, first + n))
            and list(ranks).count(ranks[0]) == n
        ):
            indices = self.topology.indices_of(np.asarray(run.site_id, np.int64))
            if (indices >= 0).all():
                if self._seq.check_run(ranks[0], first, n) is Verdict.NEW:
                    self._check_new_run(run.step[0], ranks[0])
                    self._check_new_run(max(run.step), ranks[0])
                    self.ranks.sparse_all(
                        ranks[0],
                        indices.tolist(),
                        map(
                            SparsePoints,
                            run.step,
                            run.threshold,
                            run.n_above,
                            run.indices,
                            run.values,
                        ),
                    )
                    return max(run.timestamp_ns)
                self.counters.stale += 1
                self.counters.mark()
                return self._sparse_frames(run, 1)
        return self._sparse_frames(run, 0)

    def _sparse_frames(self, run: SparseRun, start: int) -> int:
        """Apply the frames of ``run`` from ``start`` on, one by one."""
        newest_ts = 0
        for i in range(start, len(run)):
            if self._seq.check(run.rank[i], run.seq[i]) is not Verdict.NEW:
                self.counters.stale += 1
                self.counters.mark()
                continue
            step = run.step[i]
            self._check_new_run(step, run.rank[i])
            index = self.topology.index_of(run.site_id[i])
            if index < 0:
                self.topology.ensure([run.site_id[i]])
                index = self.topology.index_of(run.site_id[i])
            self.ranks.sparse(
                run.rank[i],
                index,
                SparsePoints(step, run.threshold[i], run.n_above[i], run.indices[i], run.values[i]),
            )
            newest_ts = max(newest_ts, run.timestamp_ns[i])
        return newest_ts

    def _check_new_run(self, step: int, rank: int) -> None:
        """After a rank's new HELLO, a step behind what that rank sent before means the
        trainer started over (another rank being a step behind is no restart)."""
        if self._new_streams:
            fresh = rank in self._new_streams
            self._new_streams.discard(rank)
            if fresh and step < self._max_steps.get(rank, -1):
                self.reset_data()
        if step > self._max_steps.get(rank, -1):
            self._max_steps[rank] = step

    def _attention_tokens(self, step: int, rank: int) -> tuple[str, ...] | None:
        """The tokens of ``rank``'s attention pattern of ``step`` (None: none held)."""
        for layer, head in self.attention.pairs(rank):
            pattern = self.attention.pattern(layer, head, rank)
            if pattern is not None and pattern.step == step:
                return pattern.tokens
        return None

    def _skew_alert(self, alert: SkewAlert) -> None:
        self.anomalies.add_job_alert(
            AlertKind.RANK_SKEW,
            Severity.WARNING,
            alert.step,
            alert.rank,
            alert.message,
            alert.site_id,
            alert.layer,
            alert.site,
        )

    def _job_status_alert(self, status: JobStatus) -> None:
        if status.state != JobState.RUNNING:
            rank = -1 if status.rank == 0xFFFF else status.rank
            text = status.text or JobState(status.state).name
            self.anomalies.add_job_alert(
                AlertKind.JOB_STOPPED, Severity.ERROR, status.last_step, rank, text
            )

    def _follow_topology(self) -> None:
        old_to_new = self.topology.indices_of(self._site_ids)
        size = len(self.topology)
        for store in self._stores:
            if isinstance(store, SiteStore):
                store.remap(old_to_new, size)
        self.anomalies.remap(old_to_new, size)
        self._site_ids = np.array([s.site_id for s in self.topology.sites], np.int64)
        selected = self.selection.selected
        self.selection.hover(-1)
        self.selection.select(int(old_to_new[selected]) if 0 <= selected < len(old_to_new) else -1)


def _dropped_for_us(stats: ProbeStats) -> int:
    """Frames the trainer dropped that this viewer would have received.

    The encoder's own drops reach nobody; per-client drops are told apart only by client id,
    which a viewer does not know, so the smallest per-client count is the safe reading.
    """
    clients = stats.clients["frames_dropped"]
    return int(stats.frames_dropped) + (int(clients.min()) if len(clients) else 0)
