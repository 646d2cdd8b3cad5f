"""Captures: the full tensors of a few sites at one step, written to a ``safetensors`` file.

A viewer's CAPTURE_REQUEST arrives on the server's event thread (``request``), which answers
at once when it must refuse (busy, bad sites). The training thread arms the capture at the next
step boundary (``arm``); the site hooks hand it their outputs (``on_output``) and, when the probe
measures gradients, their gradients (``on_gradient``), each copied with ``non_blocking`` into
pinned host memory behind a CUDA event. At the boundary after that step (``finish``) a writer
thread waits on the event, writes the file and sends CAPTURE_DONE: the training thread never
waits on the device or the disk. At most one capture is in flight; its bytes are capped.

In a job stream (``propose``) the serving rank's capturer does not arm at the next boundary: it
proposes the capture to the job, whose reductions bring it to every rank for the same step, and
each rank's probe hands it over there (``take``); every rank writes its own file (``rank`` in
its name), and only the serving rank answers the viewer.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from synapse_native.protocol import CaptureDone, CaptureRequest, CaptureStatus

from .sites import Site

log = logging.getLogger(__name__)

DEFAULT_DIR = "synapse-captures"
DEFAULT_MAX_SITES = 8
DEFAULT_MAX_MB = 512.0
METADATA_KEY = "synapse.capture"
GRAD_SUFFIX = "@grad"

Reply = Callable[[int, CaptureDone], object]  # (client id, answer): sent to that viewer
Propose = Callable[[int, tuple[int, ...]], object]  # (request id, site ids): to the job
NO_CLIENT = -1  # a capture no viewer of this rank asked for (a job's other ranks)


@dataclass
class _Pending:
    client_id: int
    request: CaptureRequest
    sites: list[Site]
    step: int = -1
    tensors: dict[str, torch.Tensor] = field(default_factory=dict)
    shapes: dict[int, list[int]] = field(default_factory=dict)
    grads: set[int] = field(default_factory=set)
    nbytes: int = 0
    too_large: bool = False
    events: list[torch.cuda.Event] = field(default_factory=list)  # one per device copy


class Capturer:
    """One capture at a time: armed at a step boundary, filled by the hooks, written off-thread."""

    def __init__(
        self,
        directory: str | os.PathLike[str],
        model_name: str,
        sites: Callable[[], list[Site]],
        reply: Reply,
        *,
        grads: bool = False,
        max_sites: int = DEFAULT_MAX_SITES,
        max_mb: float = DEFAULT_MAX_MB,
        rank: int | None = None,
        ranks: int = 1,
        propose: Propose | None = None,
    ) -> None:
        if max_sites < 1:
            raise ValueError(f"capture max_sites must be at least 1, got {max_sites}")
        if not max_mb > 0:
            raise ValueError(f"capture_max_mb must be > 0, got {max_mb}")
        self.directory = Path(directory).resolve()
        self.model_name = model_name
        self.grads = grads
        self.max_sites = max_sites
        self.max_bytes = int(max_mb * (1 << 20))
        self._sites = sites
        self._reply = reply
        self.rank = rank  # in the file's name (a job's ranks)
        self.ranks = ranks
        self._propose = propose
        self._proposed: _Pending | None = None  # accepted, proposed to the job
        self._lock = threading.Lock()
        self._queued: _Pending | None = None  # accepted, waiting for a step boundary
        self._active: _Pending | None = None  # being filled during the current step
        self._busy = False  # a capture is queued, filling or being written
        self._writer: threading.Thread | None = None
        self.armed = False  # the one flag the hooks check

    # -- the server's event thread ----------------------------------------------------------

    def request(self, client_id: int, request: CaptureRequest) -> CaptureDone | None:
        """Accept ``request`` for the next step, or the refusal to send back at once."""
        ids = request.site_ids
        if len(ids) > self.max_sites:
            return _refusal(
                request,
                CaptureStatus.BAD_REQUEST,
                f"{len(ids)} sites asked; this trainer captures at most {self.max_sites} at once",
            )
        by_id = {site.site_id: site for site in self._sites()}
        unknown = [i for i in ids if i not in by_id]
        if unknown:
            return _refusal(request, CaptureStatus.BAD_REQUEST, f"no such sites: {unknown}")
        with self._lock:
            if self._busy:
                return _refusal(
                    request, CaptureStatus.BUSY, "a capture is in flight; try again when it is done"
                )
            self._busy = True
            sites = [by_id[i] for i in dict.fromkeys(ids)]
            pending = _Pending(client_id, request, sites)
            if self._propose is None:
                self._queued = pending
                return None
            self._proposed = pending
        self._propose(request.request_id, tuple(s.site_id for s in sites))
        return None

    # -- the training thread, in a job ----------------------------------------------------------

    def take(self, request_id: int, site_ids: tuple[int, ...]) -> None:
        """A job's capture, due at the coming boundary: this rank's own request (the serving
        rank) or one to take for the others; ``arm`` starts it."""
        with self._lock:
            proposed = self._proposed
            if proposed is not None and proposed.request.request_id == request_id:
                self._proposed, self._queued = None, proposed
                return
            if self._busy:
                log.warning(
                    "capture %d skipped on rank %s: one is in flight", request_id, self.rank
                )
                return
            by_id = {site.site_id: site for site in self._sites()}
            sites = [by_id[i] for i in dict.fromkeys(site_ids) if i in by_id]
            if not sites:
                log.warning("capture %d: rank %s has none of its sites", request_id, self.rank)
                return
            self._busy = True
            request = CaptureRequest(request_id, tuple(site_ids))
            self._queued = _Pending(NO_CLIENT, request, sites)

    def drop_proposed(self, text: str) -> None:
        """The job cannot bring the proposed capture to every rank: refuse it."""
        with self._lock:
            proposed, self._proposed = self._proposed, None
            if proposed is None:
                return
            self._busy = False
        self._reply(proposed.client_id, _refusal(proposed.request, CaptureStatus.FAILED, text))

    # -- the training thread ----------------------------------------------------------------

    def arm(self, step: int) -> None:
        """Step boundary: finish the step captured, start the one queued."""
        if self._active is not None:
            self._finish()
        if self._queued is None:
            return
        with self._lock:
            pending, self._queued = self._queued, None
        if pending is None:
            return
        pending.step = step
        self._active = pending
        self.armed = True

    def wants(self, site: Site) -> bool:
        """Whether the armed capture takes ``site``."""
        active = self._active
        return active is not None and site in active.sites

    def on_output(self, site: Site, tensor: torch.Tensor) -> bool:
        """Copy a site's output; True when its gradient is wanted too."""
        active = self._active
        if active is None or site.site_id in active.shapes or site not in active.sites:
            return False
        active.shapes[site.site_id] = list(tensor.shape)
        self._copy(active, site.name, tensor)
        return self.grads and tensor.requires_grad

    def on_gradient(self, site: Site, grad: torch.Tensor) -> None:
        """Copy a site's gradient (called from its tensor hook during backward)."""
        active = self._active
        if active is None or site.site_id in active.grads:
            return
        active.grads.add(site.site_id)
        self._copy(active, site.name + GRAD_SUFFIX, grad)

    def finish(self) -> None:
        """End of the run (close): hand what was captured to the writer."""
        if self._active is not None:
            self._finish()

    def join(self, timeout: float | None = None) -> None:
        """Wait for the writer thread (tests, close)."""
        writer = self._writer
        if writer is not None:
            writer.join(timeout)

    # -- internals ----------------------------------------------------------------------------

    def _copy(self, active: _Pending, name: str, tensor: torch.Tensor) -> None:
        nbytes = tensor.numel() * tensor.element_size()
        if active.too_large or active.nbytes + nbytes > self.max_bytes:
            active.too_large = True
            active.tensors.clear()
            return
        active.nbytes += nbytes
        source = tensor.detach()
        if source.is_cuda:
            host = torch.empty(source.shape, dtype=source.dtype, pin_memory=True)
            host.copy_(source, non_blocking=True)
            event = torch.cuda.Event()  # type: ignore[no-untyped-call]
            event.record()  # on this thread's current stream: the gradient's may differ
            active.events.append(event)
        else:
            host = source.clone()
        active.tensors[name] = host

    def _finish(self) -> None:
        active, self._active = self._active, None
        self.armed = False
        assert active is not None
        self._writer = threading.Thread(
            target=self._write, args=(active,), name="synapse-capture", daemon=True
        )
        self._writer.start()

    def _write(self, active: _Pending) -> None:
        """The writer thread: wait for the copies, write the file, answer the viewer."""
        request = active.request
        try:
            done = self._written(active)
        except Exception as exc:  # the viewer hears why; the training run goes on
            log.warning("capture %d failed: %s", request.request_id, exc)
            done = _refusal(request, CaptureStatus.FAILED, f"writing the capture failed: {exc}")
            done = CaptureDone(done.request_id, done.status, active.step, text=done.text)
        finally:
            with self._lock:
                self._busy = False
        if active.client_id == NO_CLIENT:
            log.info(
                "capture %d on rank %s: %s", request.request_id, self.rank, done.path or done.text
            )
            return
        self._reply(active.client_id, done)

    def _written(self, active: _Pending) -> CaptureDone:
        request = active.request
        if active.too_large:
            cap = self.max_bytes / (1 << 20)
            text = f"the tensors asked exceed the capture size cap of {cap:g} MiB"
            return CaptureDone(request.request_id, CaptureStatus.TOO_LARGE, active.step, text=text)
        if not active.tensors:
            text = "none of the sites ran during the step captured"
            return CaptureDone(request.request_id, CaptureStatus.FAILED, active.step, text=text)
        for event in active.events:
            event.synchronize()
        from safetensors.torch import save_file

        tensors = {
            name: (t.float() if t.dtype == torch.bfloat16 else t).contiguous()
            for name, t in active.tensors.items()
        }
        self.directory.mkdir(parents=True, exist_ok=True)
        name = _file_name(self.model_name, active.step, request.request_id, self.rank)
        path = self.directory / name
        partial = path.with_suffix(".partial")
        save_file(tensors, str(partial), metadata={METADATA_KEY: self._metadata(active)})
        os.replace(partial, path)
        sites = sum(1 for s in active.sites if s.site_id in active.shapes)
        text = ""
        if self.ranks > 1:
            others = _file_name(self.model_name, active.step, request.request_id, None)
            text = (
                f"the job's {self.ranks} ranks capture step {active.step}: each writes "
                f"{others.removesuffix('.safetensors')}-rankN.safetensors in its own "
                f"capture_dir (this file is rank {self.rank}'s)"
            )
        return CaptureDone(
            request.request_id,
            CaptureStatus.WRITTEN,
            active.step,
            sites,
            path.stat().st_size,
            str(path),
            text,
        )

    def _metadata(self, active: _Pending) -> str:
        sites = [
            {
                "site_id": s.site_id,
                "name": s.name,
                "layer": s.layer,
                "kind": int(s.kind),
                "shape": active.shapes[s.site_id],
                "tensor": s.name,
                "grad": s.name + GRAD_SUFFIX if s.site_id in active.grads else None,
            }
            for s in active.sites
            if s.site_id in active.shapes
        ]
        meta: dict[str, object] = {
            "model": self.model_name,
            "step": active.step,
            "request_id": active.request.request_id,
            "created_ns": time.time_ns(),
            "sites": sites,
        }
        if self.rank is not None:  # a job's rank
            meta["rank"], meta["ranks"] = self.rank, self.ranks
        return json.dumps(meta)


def _refusal(request: CaptureRequest, status: CaptureStatus, text: str) -> CaptureDone:
    return CaptureDone(request.request_id, status, text=text)


def _file_name(model: str, step: int, request_id: int, rank: int | None = None) -> str:
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", model) or "model"
    tail = "" if rank is None else f"-rank{rank}"
    return f"{safe}-step{step:08d}-r{request_id}{tail}.safetensors"
