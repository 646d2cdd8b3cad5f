"""``attach``, ``Probe``, ``log_activation`` and ``log_metrics``: the user-facing probe.

The probe hooks the sites found by ``discovery``, counts steps, decides at each step boundary
whether the coming step is measured, and hands each measured step to the encoder thread. On a
step that is not measured, a hook checks one flag and returns.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, Protocol

import torch
from torch import nn
from torch.utils.hooks import RemovableHandle

from synapse_native.protocol import (
    Capability,
    ControlState,
    ModelMeta,
)
from synapse_serve.control import (
    KNOWN_KINDS,
    budget_errors,
)

from .actions import TrainerActions
from .capture import Capturer
from .collector import StepCollector
from .discovery import find_blocks, find_sites, guess_width, unwrap
from .encoder import Encoder
from .governor import CostReport, Governor, Plan
from .gpu_timer import GpuTimer
from .grads import BlockGradNorms
from .kernels import cpu_kernel, cuda_kernel
from .lenses.attention import AttentionLens
from .lenses.lens import Lens, LensCapture, outside_graphs
from .lenses.optimizer_lens import OptimizerLens
from .lenses.routing import MoeRoutingLens
from .metrics import MetricsRing, MetricValue
from .metrics import check as check_metrics
from .metrics import stage as stage_metrics
from .options import ProbeOptions
from .ranks import distributed
from .ranks.distributed import Ports
from .ranks.job import Job
from .recorder import FrameRecorder
from .sites import Site, SiteTable, first_tensor

log = logging.getLogger(__name__)

_CAPTURE_JOIN_S = 30.0  # close() waits this long for a capture being written
_CLOSE_DRAIN_S = 5.0  # close() waits this long for room in the encoder queue for the last step

_default: Probe | None = None


class ServerLike(Protocol):
    """What the probe needs of ``synapse_serve.server.Server`` (tests pass a fake)."""

    def broadcast_step(self, messages: Sequence[Any], *, step: int) -> int: ...

    def broadcast(self, message: Any, *, step: int, flags: int = 0) -> bool: ...

    def set_meta(self, meta: ModelMeta) -> None: ...

    def poll_control(self) -> ControlState | None: ...

    def report_stats(self, probe_ns: int, steps_sampled: int, steps_seen: int) -> Any: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class ProbeCounters:
    """The probe's own counters, as seen from the training process."""

    steps_seen: int  # step boundaries passed
    steps_sampled: int  # steps measured
    steps_skipped: int  # steps due for measuring but skipped: every host buffer was in use
    snapshots_dropped: int  # measured steps dropped because the encoder queue was full
    snapshots_encoded: int
    probe_ns: int  # time the training thread spent in the probe
    metrics_dropped: int = 0  # log_metrics calls dropped: every metrics slot was in use
    frames_not_recorded: int = 0  # record=: frames dropped (queue full) or lost (a write failed)


def attach(
    model: nn.Module,
    host: str | None = None,
    port: Ports | None = None,
    *,
    options: ProbeOptions | None = None,
    server: ServerLike | None = None,
    **overrides: Any,
) -> Probe:
    """Hook ``model``'s transformer blocks and stream their statistics on ``host:port``.

    The keywords are ``ProbeOptions``' fields (docs/PROBE.md explains each); they override
    ``options`` where both are given. Under torch.distributed each rank listens on
    ``port + its local rank`` (or on its entry of a list of ports), or the serving rank alone on
    ``port`` (the job stream). ``server`` replaces the TCP server (tests). The new probe becomes
    the default one that ``synapse_probe.log_activation`` logs to.
    """
    if host is not None:
        overrides["host"] = host
    if port is not None:
        overrides["port"] = port
    return Probe(model, (options or ProbeOptions()).with_overrides(**overrides), server=server)


def log_activation(layer_id: int, tensor: torch.Tensor, site: str = "residual") -> None:
    """Log ``tensor`` as ``site`` of block ``layer_id`` on the last attached probe."""
    if _default is None:
        raise RuntimeError("no synapse probe is attached: call synapse_probe.attach(model) first")
    _default.log_activation(layer_id, tensor, site)


def log_metrics(step: int | None = None, **values: MetricValue) -> None:
    """Send ``values`` (numbers or one-element tensors) as TRAINING_METRICS on the last
    attached probe; ``step`` defaults to the step being run."""
    if _default is None:
        raise RuntimeError("no synapse probe is attached: call synapse_probe.attach(model) first")
    _default.log_metrics(step, **values)


class Probe:
    """Hooks, step boundaries and the hand-off to the encoder thread. Use ``attach``."""

    def __init__(
        self,
        model: nn.Module,
        options: ProbeOptions | None = None,
        *,
        server: ServerLike | None = None,
    ) -> None:
        options = options or ProbeOptions()
        self.options = options
        global _default
        root = unwrap(model)
        self.model_name = options.name or type(root).__name__
        if options.record is not None and server is not None and not hasattr(server, "add_tap"):
            raise ValueError("record= needs a server that takes taps (the probe's own server)")
        if options.capture and server is not None and not hasattr(server, "set_capture_handler"):
            raise ValueError("capture=True needs the probe's own server (or the job stream)")
        self._backlog_bytes = int(options.backlog_mb * (1 << 20))
        self._recorder = (
            FrameRecorder(
                options.record,
                model=self.model_name,
                max_mb=options.record_max_mb,
                sparse_hz=options.record_sparse_hz,
                pattern_hz=options.record_pattern_hz,
            )
            if options.record is not None
            else None
        )
        self.grads = options.grads
        self._capture = options.capture  # announced as Capability.CAPTURE by the probe's server
        blocks = find_blocks(model, options.layers)
        self._block_names = [block_name for block_name, _ in blocks]
        self._table = SiteTable()
        specs = find_sites(model, blocks, options.per_block)
        sites = [
            self._table.add(spec.layer, spec.kind, spec.name, guess_width(spec.module))
            for spec in specs
        ]
        self._control = ControlState(
            options.start_threshold,
            options.rate_hz,
            KNOWN_KINDS,
            False,
            options.top_k,
            options.mode,
        )
        self._kinds = KNOWN_KINDS
        kernel = cpu_kernel.load()
        norms = BlockGradNorms([block for _, block in blocks]) if options.grads else None
        fused = cuda_kernel.load() if torch.cuda.is_available() else None
        self._collector = StepCollector(len(self._table), norms, kernel, fused)
        self._collector.max_width = max((s.neurons for s in sites), default=0)
        self._collector.sample_fraction = float(options.sample_fraction)
        self.probe_ns = 0
        self._lens_ns = 0  # of probe_ns, the lenses' share
        self._marks = (0, 0)  # probe_ns and _lens_ns when the step being run began
        self._gpu_timer = GpuTimer() if torch.cuda.is_available() else None
        self._on_gpu = False  # a site's tensor was on a GPU: the lenses' captures are timed too
        self._lenses: list[Lens] = self._make_lenses(root, blocks, options)
        if options.optimizer is not None:
            try:
                self._lenses.append(
                    OptimizerLens(options.optimizer, blocks, on_time=self._add_probe_ns)
                )
            except BaseException:
                for lens in self._lenses:
                    lens.close()
                raise
        self._job: Job | None = None
        try:
            if server is None and _job_wanted(options.job):
                server = self._job = self._start_job(options)
            self._server = server if server is not None else self._start_server(options)
        except BaseException:
            for lens in self._lenses:
                lens.close()
            if self._recorder is not None:
                self._recorder.close()
            raise
        self._owns_server = server is None or server is self._job
        if server is not None:
            server.set_meta(self._table.meta(self.model_name))
        self._table.changed = False
        self._governor = Governor(
            options.budget, rate_hz=options.rate_hz, has_lenses=bool(self._lenses)
        )
        self._encoder = Encoder(self._server, kernel, on_cost=self._governor.add_cost)
        if self._recorder is not None:
            self._encoder.after_item = self._recorder.drain
            self._server.add_tap(self._recorder.tap)  # type: ignore[attr-defined]
        self._metrics = MetricsRing()
        self._capturer = (
            self._start_capture(options.capture_dir, options.capture_max_mb)
            if options.capture
            else None
        )
        self._actions: TrainerActions | None = None  # made by the first on_request

        self._measuring = False  # the one flag every hook checks first
        self._epoch = 0  # changes at every boundary; sites compare it to count once per step
        self._norms_epoch = -1
        self._step = -1
        self._manual = False
        self._closed = False
        self._steps_seen = 0
        self._steps_sampled = 0
        self._steps_skipped = 0

        self._handles: list[RemovableHandle] = [
            spec.module.register_forward_hook(self._site_hook(site))
            for spec, site in zip(specs, sites, strict=True)
        ]
        # First of the root's pre-hooks: the boundary comes before any lens reads the inputs.
        self._handles.append(root.register_forward_pre_hook(self._root_hook(), prepend=True))
        _default = self

    # -- public API -----------------------------------------------------------------------------

    @property
    def sites(self) -> list[Site]:
        """The hooked sites, by site id."""
        return list(self._table.sites)

    @property
    def control(self) -> ControlState:
        """The streaming settings in force (changed live by the app's CONTROL requests)."""
        return self._control

    @property
    def current_step(self) -> int:
        """The step being run (-1 before the first one)."""
        return self._step

    @property
    def address(self) -> tuple[str, int] | None:
        """Where the server listens, when the probe runs its own server."""
        address = getattr(self._server, "address", None)
        return address if isinstance(address, tuple) else None

    @property
    def job(self) -> Job | None:
        """This rank's part of the job stream (None outside one): ``state``, ``status``,
        ``serving``, ``off``."""
        return self._job

    @property
    def client_count(self) -> int:
        """Viewers connected now (0 for a server that does not count them)."""
        count = getattr(self._server, "client_count", 0)
        return count if isinstance(count, int) else 0

    def stats(self) -> ProbeCounters:
        """The probe's counters so far."""
        return ProbeCounters(
            steps_seen=self._steps_seen,
            steps_sampled=self._steps_sampled,
            steps_skipped=self._steps_skipped,
            snapshots_dropped=self._encoder.dropped,
            snapshots_encoded=self._encoder.encoded,
            probe_ns=self.probe_ns,
            metrics_dropped=self._metrics.dropped,
            frames_not_recorded=(
                0 if self._recorder is None else self._recorder.dropped + self._recorder.lost
            ),
        )

    @property
    def budget(self) -> float | None:
        """The probe's allowed share of the step time (None: the governor is off)."""
        return self._governor.budget

    @budget.setter
    def budget(self, value: float | None) -> None:
        if value is not None and budget_errors(value):
            raise ValueError(budget_errors(value)[0])
        self._governor.budget = value

    def cost(self) -> CostReport:
        """What the probe costs the step, as its governor measures it (also sent as
        PROBE_COST with each measured step)."""
        return self._governor.report()

    def latest_block_grad_norms(self) -> tuple[int, Any] | None:
        """(step, per-block parameter-gradient L2 norms) of the last step that measured them."""
        return self._encoder.latest_block_grad_norms()

    def step(self, n: int) -> None:
        """Start step ``n``: what runs from now on belongs to it. From the first call on, the
        probe stops counting steps from the model's forward calls."""
        self._manual = True
        self._boundary(int(n))

    def on_request(self, name: str, fn: Callable[[], object]) -> None:
        """Offer ``fn`` to viewers as the action ``name`` (e.g. ``"checkpoint"``): the app
        shows it as a button; the probe calls ``fn()`` on the training thread at the next step
        boundary after a viewer asks, and tells that viewer what it returned or raised."""
        set_actions = getattr(self._server, "set_actions", None)
        send_to = getattr(self._server, "send_to", None)
        if set_actions is None or send_to is None:
            raise ValueError("on_request needs the probe's own server (not a job stream)")
        if self._actions is None:
            self._actions = TrainerActions(send_to)
        self._actions.add(name, fn)
        set_actions(self._actions.names, self._actions.request)

    def log_activation(self, layer_id: int, tensor: torch.Tensor, site: str = "residual") -> None:
        """Measure ``tensor`` as ``site`` of block ``layer_id`` (a new site the first time)."""
        found = self._table.get(layer_id, site)
        if found is None:
            found = self._add_site(layer_id, site, tensor)
        if self._measuring:
            self._on_output(found, tensor)
        if self._capturer is not None and self._capturer.armed:
            self._capture_output(found, tensor)

    def log_metrics(self, step: int | None = None, **values: MetricValue) -> None:
        """Send ``values`` as one TRAINING_METRICS frame for ``step`` (default: the step being
        run), e.g. ``probe.log_metrics(loss=loss.detach(), lr=lr, grad_norm=norm)``.

        Values are Python numbers or one-element tensors on any device, read without a host
        sync (docs/PROBE.md). Every call is sent, whatever the sampling rate; a call made while
        the encoder is far behind is dropped and counted (``stats().metrics_dropped``).
        """
        start = time.perf_counter_ns()
        step = max(self._step, 0) if step is None else int(step)
        check_metrics(step, values)
        if self._closed:
            return
        slot = self._metrics.acquire()
        if slot is None:
            self._metrics.dropped += 1
        else:
            try:
                stage_metrics(slot, step, values)
            except BaseException:
                slot.release()
                raise
            self._encoder.submit_metrics(slot)
        self.probe_ns += time.perf_counter_ns() - start

    def set_control(self, state: ControlState) -> None:
        """Apply streaming settings locally (the app's CONTROL requests do the same)."""
        self._control = state
        self._governor.rate_hz = state.rate_hz
        self._governor.paused = state.paused
        self._kinds = state.site_kinds

    def flush(self, timeout: float = 5.0) -> bool:
        """End the step being measured and wait until the encoder has sent everything."""
        self._finish_step()
        return self._encoder.flush(timeout)

    def close(self) -> None:
        """Send the last measured step, remove every hook, stop the encoder and the server."""
        global _default
        if self._closed:
            return
        self._closed = True
        if self._measuring:  # training is over: the run's last step is worth a short wait
            self._encoder.flush(_CLOSE_DRAIN_S)
        self._finish_step()
        for handle in self._handles:
            handle.remove()
        for lens in self._lenses:
            lens.close()
        self._encoder.close()
        if self._capturer is not None:
            self._capturer.finish()
            self._capturer.join(_CAPTURE_JOIN_S)
        if self._recorder is not None:
            self._server.remove_tap(self._recorder.tap)  # type: ignore[attr-defined]
            self._recorder.close()
        if self._owns_server:
            self._server.close()
        if _default is self:
            _default = None

    def __enter__(self) -> Probe:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- step boundaries ------------------------------------------------------------------------

    def _boundary(self, step: int) -> None:
        """Close the step that ran, apply pending control, decide whether ``step`` is measured."""
        if self._actions is not None:  # the user's own work: not counted as the probe's
            self._actions.run(step)
        start = time.perf_counter_ns()
        self._finish_step()
        self._collect_costs()
        state = self._server.poll_control()
        if state is not None:
            self.set_control(state)
        take_budget = getattr(self._server, "take_budget", None)
        budget = take_budget() if take_budget is not None else None
        if budget is not None:
            self._governor.budget = budget
        if self._table.changed:
            self._table.changed = False
            self._server.set_meta(self._table.meta(self.model_name))
        ended = time.perf_counter_ns()
        self.probe_ns += ended - start
        probe_mark, lens_mark = self._marks
        self._governor.step_ended(self.probe_ns - probe_mark, self._lens_ns - lens_mark, ended)
        self._marks = (self.probe_ns, self._lens_ns)
        self._step = step
        if self._capturer is not None:
            if self._job is not None:
                self._job_capture(step)
            self._capturer.arm(step)
        self._epoch += 1
        self._steps_seen += 1
        plan = self._governor.plan(step)
        if self._job is not None:
            plan = self._job_plan(step)
            self._governor.ran(plan)
        if not self._closed and plan.measure:
            control = self._control
            self._measuring = self._collector.begin(
                step, control.threshold, control.top_k, control.threshold_mode
            )
            if self._measuring:
                self._steps_sampled += 1
            else:
                self._steps_skipped += 1
                if self._job is not None:
                    self._job.no_data(step)
        lenses_start = time.perf_counter_ns()
        for lens in self._lenses:
            lens.begin(step, self._measuring and plan.lenses)
        done = time.perf_counter_ns()
        self._lens_ns += done - lenses_start
        self.probe_ns += done - ended

    def _collect_costs(self) -> None:
        """Hand the GPU time of earlier steps' launches, as it completes, to the governor."""
        if self._gpu_timer is not None:
            for step, lens, ns in self._gpu_timer.collect():
                self._governor.add_cost(step, ns, lens=lens)

    def _finish_step(self) -> None:
        if not self._measuring:
            return
        self._measuring = False
        snapshot = self._collector.finish()
        captures: list[LensCapture] = []
        start = time.perf_counter_ns()
        timer = self._gpu_timer if self._on_gpu else None
        gpu_start = timer.start() if timer is not None else None
        for lens in self._lenses:
            capture = lens.finish()
            if capture is not None:
                captures.append(capture)
        if timer is not None:
            timer.stop(gpu_start, self._step, lens=True)
        self._lens_ns += time.perf_counter_ns() - start
        if snapshot is None:
            if self._job is not None:
                self._job.no_data(self._step)
            for capture in captures:
                capture.release()
            return
        snapshot.captures = captures
        snapshot.probe_ns = self.probe_ns
        snapshot.steps_sampled = self._steps_sampled
        snapshot.steps_seen = self._steps_seen
        snapshot.cost = self._governor.report()
        if not self._encoder.submit(snapshot) and self._job is not None:
            self._job.no_data(snapshot.step)

    # -- hooks ----------------------------------------------------------------------------------

    def _root_hook(self) -> Callable[..., None]:
        def on_root_forward(module: nn.Module, args: Any) -> None:
            if self._manual or torch._C._current_autograd_node() is not None:
                return  # steps come from step(n); or this is a checkpoint's re-run in backward
            self._boundary(self._step + 1)

        return outside_graphs(on_root_forward)

    def _site_hook(self, site: Site) -> Callable[..., None]:
        def on_output(module: nn.Module, args: Any, output: Any) -> None:
            if self._measuring:
                self._on_output(site, output)
            if self._capturer is not None and self._capturer.armed:
                self._capture_output(site, output)

        return outside_graphs(on_output)

    def _on_output(self, site: Site, output: Any) -> None:
        """A measured step's work for one site: statistics now, a gradient hook if asked."""
        epoch = self._epoch
        if not site.kind_mask & self._kinds:
            return
        fresh = site.seen_step != epoch
        wants_grad = self.grads and site.grad_step != epoch
        if not (fresh or wants_grad):
            return  # e.g. activation checkpointing re-running the forward during backward
        tensor = first_tensor(output)
        if tensor is None:
            return
        start = time.perf_counter_ns()
        if fresh:
            site.seen_step = epoch
            width = tensor.shape[-1] if tensor.dim() else 1
            if width != site.neurons:
                self._table.set_width(site, width)
                self._collector.max_width = max(self._collector.max_width, width)
            self._record(site.site_id, tensor, gradient=False)
        if wants_grad and tensor.requires_grad:
            site.grad_step = epoch
            register_hook: Any = tensor.register_hook
            register_hook(self._gradient_hook(site, epoch))
        self.probe_ns += time.perf_counter_ns() - start

    def _capture_output(self, site: Site, output: Any) -> None:
        """Hand a site's output (and later its gradient) to the armed capture."""
        capturer = self._capturer
        assert capturer is not None
        tensor = first_tensor(output)
        if tensor is None or not capturer.wants(site):
            return
        start = time.perf_counter_ns()
        if capturer.on_output(site, tensor):
            register_hook: Any = tensor.register_hook
            register_hook(partial(capturer.on_gradient, site))
        self.probe_ns += time.perf_counter_ns() - start

    def _gradient_hook(self, site: Site, epoch: int) -> Callable[[torch.Tensor], None]:
        def on_gradient(grad: torch.Tensor) -> None:
            if not self._measuring or self._epoch != epoch:
                return
            start = time.perf_counter_ns()
            self._record(site.site_id, grad, gradient=True)
            if self._norms_epoch != epoch:
                self._norms_epoch = epoch
                torch.autograd.Variable._execution_engine.queue_callback(self._after_backward)
            self.probe_ns += time.perf_counter_ns() - start

        return on_gradient

    def _record(self, site_id: int, tensor: torch.Tensor, gradient: bool) -> None:
        """Summarize ``tensor``; on a GPU, between the events that time the launches."""
        timer = self._gpu_timer
        if timer is None or not tensor.is_cuda:
            self._collector.record(site_id, tensor, gradient)
            return
        self._on_gpu = True
        start = timer.start()
        self._collector.record(site_id, tensor, gradient)
        timer.stop(start, self._step)

    def _after_backward(self) -> None:
        """End of a measured step's backward: every parameter gradient is in place."""
        if self._measuring:
            start = time.perf_counter_ns()
            self._collector.record_block_norms()
            self.probe_ns += time.perf_counter_ns() - start

    # -- set-up ---------------------------------------------------------------------------------

    def _make_lenses(
        self, root: nn.Module, blocks: Sequence[tuple[str, nn.Module]], options: ProbeOptions
    ) -> list[Lens]:
        """The lenses asked for that apply to this model (each hooks what it reads)."""
        lenses: list[Lens] = []
        if options.attention:
            found = AttentionLens.for_blocks(
                root,
                blocks,
                pattern_hz=options.pattern_hz,
                sample_tokens=options.sample_tokens,
                tokenizer=options.tokenizer,
                on_time=self._add_probe_ns,
            )
            if found is not None:
                lenses.append(found)
        if options.routing:
            routers = MoeRoutingLens.for_blocks(blocks, on_time=self._add_probe_ns)
            if routers is not None:
                lenses.append(routers)
        return lenses

    def _add_probe_ns(self, ns: int) -> None:
        """Time a lens's hook spent on the training thread."""
        self.probe_ns += ns
        self._lens_ns += ns

    def _lens_capabilities(self) -> Capability:
        capabilities = Capability(0)
        for lens in self._lenses:
            if isinstance(lens, AttentionLens):
                capabilities |= Capability.ATTENTION | Capability.RESIDUAL
            elif isinstance(lens, MoeRoutingLens):
                capabilities |= Capability.MOE
            elif isinstance(lens, OptimizerLens):
                capabilities |= Capability.OPTIMIZER
        return capabilities

    def _add_site(self, layer: int, kind: str, tensor: torch.Tensor) -> Site:
        prefix = (
            self._block_names[layer] if 0 <= layer < len(self._block_names) else f"layer{layer}"
        )
        width = tensor.shape[-1] if tensor.dim() else 1
        site = self._table.add(layer, kind, f"{prefix}.{kind}" if prefix else kind, width)
        self._collector.n_sites = len(self._table)
        self._collector.max_width = max(self._collector.max_width, width)
        return site

    def _start_job(self, options: ProbeOptions) -> Job:
        """This rank's part of the job stream; the serving rank also starts the server."""
        port = options.port
        base = port if isinstance(port, int) else distributed.rank_port(port, 0)
        return Job(
            meta=self._table.meta(self.model_name),
            control=self._control,
            grads=self.grads,
            serve_rank=options.serve_rank,
            timeout=options.job_timeout,
            start_server=lambda: self._start_server(options, port=base, job=True),
            interval_source=self._governed_interval,
        )

    def _start_capture(self, directory: str | os.PathLike[str], max_mb: float) -> Capturer:
        """The capturer, answering the server's CAPTURE_REQUESTs (in a job, the serving rank's
        server's, and every rank captures what the job's reductions bring)."""
        job = self._job
        server: Any = self._server if job is None else job.server  # None: a job's other rank
        capturer = Capturer(
            directory,
            self.model_name,
            lambda: list(self._table.sites),
            server.send_to if server is not None else _no_reply,
            grads=self.grads,
            max_mb=max_mb,
            rank=None if job is None else job.rank,
            ranks=1 if job is None else job.world_size,
            propose=job.propose_capture if job is not None and server is not None else None,
        )
        if server is not None:
            server.set_capture_handler(capturer.request)
        return capturer

    def _job_capture(self, step: int) -> None:
        """At a boundary in a job: hand the capturer the capture due at ``step`` (the same on
        every rank); refuse the proposed one once the job's probe is off."""
        job, capturer = self._job, self._capturer
        assert job is not None and capturer is not None
        if job.off:
            capturer.drop_proposed(f"the job stream stopped ({job.state.name}): nothing captured")
            return
        capture = job.capture_due(step)
        if capture is not None:
            capturer.take(capture.request_id, capture.site_ids)

    def _governed_interval(self) -> int:
        """The governor's interval once it has decided one (0: not yet, or no budget)."""
        governor = self._governor
        return 0 if governor.budget is None or governor.calibrating else governor.interval

    def _job_plan(self, step: int) -> Plan:
        """The job's choice for ``step`` (the same on every rank); lenses on the serving
        rank and the rank relayed in full only, at the governor's lens interval."""
        assert self._job is not None
        measure = self._job.due(step)
        lens_every = max(1, self._governor.lens_interval)
        full = self._job.serving or self._job.relayed  # the ranks whose lens frames are sent
        return Plan(measure, measure and full and step % lens_every == 0)

    def _start_server(
        self, options: ProbeOptions, *, port: Ports | None = None, job: bool = False
    ) -> ServerLike:
        """The probe's TCP server (``port``: instead of the options' own, for the job's)."""
        from synapse_serve.server import DEFAULT_CAPABILITIES, Server

        host = options.host
        port = options.port if port is None else port
        rank, world_size = _rank_and_world_size()
        local_rank, local_size = distributed.local_rank_and_size(rank, world_size)
        if job:  # the job's one server listens on ``port`` itself
            local_rank, local_size = 0, 1
        capabilities = DEFAULT_CAPABILITIES | Capability.METRICS | Capability.GOVERNOR
        if job:
            capabilities |= Capability.JOB | Capability.RANK_RELAY
        capabilities |= self._lens_capabilities()
        if self.grads:
            capabilities |= Capability.GRADIENTS | Capability.GRAD_NORMS
        if self._capture:
            capabilities |= Capability.CAPTURE
        if not job:
            capabilities |= Capability.ACTIONS
        server = Server(
            self._table.meta(self.model_name),
            host=host,
            port=distributed.rank_port(port, local_rank),
            token=options.token,
            port_fallback=options.port_fallback,
            rank=rank,
            world_size=world_size,
            control=self._control,
            name=self.model_name,
            capabilities=capabilities,
            backlog_bytes=self._backlog_bytes,
        )
        server.start()
        if local_rank == 0:
            distributed.announce(host, port, local_size)
        return server


def _no_reply(client_id: int, done: Any) -> None:
    """A job's other ranks answer no viewer: the serving rank does."""


def _job_wanted(job: bool | None) -> bool:
    """Whether the probe joins a job stream: asked for, or by default under an initialised
    torch.distributed group of several ranks."""
    if job is False:
        return False
    _, world_size = _rank_and_world_size()
    if job and not torch.distributed.is_initialized():
        raise RuntimeError("job=True needs torch.distributed initialised (init_process_group)")
    return world_size > 1


def _rank_and_world_size() -> tuple[int, int]:
    """This process's torch.distributed rank and world size ((0, 1) when not distributed)."""
    dist = torch.distributed
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1
