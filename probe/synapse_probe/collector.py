"""Collects one sampled step's statistics into preallocated buffers, then hands them over.

Called on the training thread (and the autograd thread for gradients) during a sampled step.
CPU tensors go through the native single-pass kernel when it is available, CUDA tensors through
the fused Triton kernel when Triton is installed; everything else through on-device torch
reductions. Device results land in a slot buffer that is copied off the device once per step,
without waiting.
"""

from __future__ import annotations

import torch

from synapse_native.protocol import SummaryFlag
from synapse_serve.selection import relative

from .grads import BlockGradNorms
from .kernels.cpu_kernel import CpuKernel
from .kernels.cuda_kernel import CudaKernel
from .kernels.reductions import summarize_into
from .slots import ALL_INF, ALL_NAN, SlotBuffer
from .snapshot import DeviceRow, HostBuffer, HostPool, NativeRow, Snapshot

POOL_SIZE = 3  # host buffers: one being filled, up to two waiting for or inside the encoder


class StepCollector:
    """Per-step measurement state: which buffer is being filled, and what was written to it."""

    def __init__(
        self,
        n_sites: int,
        block_norms: BlockGradNorms | None,
        cpu_kernel: CpuKernel | None,
        cuda_kernel: CudaKernel | None = None,
    ) -> None:
        self.n_sites = n_sites
        self.block_norms = block_norms
        self.cpu_kernel = cpu_kernel
        self.cuda_kernel = cuda_kernel
        self.pool = HostPool(POOL_SIZE)
        self._slots: SlotBuffer | None = None
        self._buffer: HostBuffer | None = None
        self._snapshot: Snapshot | None = None
        self.top_k = 0
        self.threshold = 0.0
        self.mode = 0  # ThresholdMode
        self.max_width = 0  # widest site seen: no slot needs room for more top-k entries
        self.sample_fraction = 1.0  # below 1: statistics of every n-th token (``sampled``)

    def begin(self, step: int, threshold: float, top_k: int, mode: int = 0) -> bool:
        """Start measuring ``step``; False when every host buffer is still in use (skip it)."""
        buffer = self.pool.acquire()
        if buffer is None:
            return False
        self._buffer = buffer
        self.threshold = threshold
        self.mode = mode
        self.top_k = top_k
        if self._slots is not None:
            if self._slots.top_k != self._capacity() or self._slots.n_sites < self.n_sites:
                self._slots = self._new_slots(self._slots.device)
            self._slots.clear()
        self._snapshot = Snapshot(step, buffer, self.pool, threshold, mode)
        return True

    def record(self, site_id: int, tensor: torch.Tensor, gradient: bool) -> None:
        """Summarize ``tensor`` (an activation, or the gradient arriving at a site's output)."""
        snapshot = self._snapshot
        if snapshot is None or tensor.numel() == 0:
            return
        whole, tensor = tensor, sampled(tensor, self.sample_fraction)
        total = whole.numel() if tensor is not whole else 0
        kernel = self.cpu_kernel
        if kernel is not None and tensor.device.type == "cpu" and kernel.accepts(tensor):
            assert self._buffer is not None
            index = len(snapshot.native_rows)
            cols = tensor.shape[-1] if tensor.dim() else 1
            keep = not gradient or relative(self.mode)  # the means of a relative selection
            neurons = self._buffer.neuron_means((site_id, gradient), cols) if keep else None
            record = self._buffer.record(index)
            kernel.summarize(tensor, self.threshold, site_id, gradient, record, neurons)
            if total:  # the whole tensor's counts; the statistics stay the sample's
                record["count"] = total
                record["nan_count"] = int(torch.isnan(whole).sum())
                record["inf_count"] = int(torch.isinf(whole).sum())
                record["flags"] |= int(SummaryFlag.SAMPLED)
            top_k = 0 if gradient else self.top_k
            snapshot.native_rows.append(NativeRow(site_id, gradient, index, top_k))
            return
        slots = self._slots_on(tensor.device)
        row = (slots.gradients if gradient else slots.activations)[site_id]
        top_k = 0 if gradient else slots.top_k
        fused = self.cuda_kernel
        if fused is not None and fused.accepts(tensor):
            k = fused.summarize_into(tensor, row, self.threshold, top_k, self.mode)
        else:
            k = summarize_into(tensor, row, self.threshold, top_k, self.mode)
        if total:  # NaN and inf of every element, counted on the device (no sync)
            nan = torch.isnan(whole).sum()
            row[ALL_NAN : ALL_INF + 1].copy_(torch.stack((nan, torch.isinf(whole).sum())))
        cols = tensor.shape[-1] if tensor.dim() else 1
        snapshot.device_rows.append(DeviceRow(site_id, gradient, tensor.numel(), k, cols, total))

    def record_block_norms(self) -> None:
        """Measure the per-block parameter-gradient norms (call after backward)."""
        if self._snapshot is None or self.block_norms is None or not self.block_norms.params:
            return
        device = _first_grad_device(self.block_norms)
        if device is None:
            return
        slots = self._slots_on(device)
        if self.block_norms.write_into(slots.norms):
            self._snapshot.n_norms = len(self.block_norms)

    def finish(self) -> Snapshot | None:
        """End the step: start the copy off the device and return what to encode (or None)."""
        snapshot, buffer = self._snapshot, self._buffer
        self._snapshot = self._buffer = None
        if snapshot is None or buffer is None:
            return None
        if not (snapshot.device_rows or snapshot.native_rows or snapshot.n_norms):
            self.pool.release(buffer)
            return None
        slots = self._slots
        buffer.mark_copy(on_gpu=False)
        if slots is not None and (snapshot.device_rows or snapshot.n_norms):
            on_gpu = slots.device.type == "cuda"
            host = buffer.slots_tensor(slots.size, pinned=on_gpu)
            host.copy_(slots.flat, non_blocking=on_gpu)
            buffer.mark_copy(on_gpu)
            snapshot.n_sites = slots.n_sites
            snapshot.width = slots.width
        return snapshot

    def _slots_on(self, device: torch.device) -> SlotBuffer:
        """The slot buffer, (re)allocated on ``device`` when the tensors moved or sites grew."""
        slots = self._slots
        if slots is None or slots.device != device:
            slots = self._new_slots(device)
            if self._snapshot is not None:  # rows written on the old device are lost
                self._snapshot.device_rows.clear()
                self._snapshot.n_norms = 0
        elif slots.n_sites < self.n_sites:
            slots = slots.resized(self.n_sites)
        self._slots = slots
        return slots

    def _new_slots(self, device: torch.device) -> SlotBuffer:
        return SlotBuffer(device, self.n_sites, len(self.block_norms or ()), self._capacity())

    def _capacity(self) -> int:
        """Top-k entries per activation slot."""
        return min(self.top_k, self.max_width) if self.max_width else self.top_k


def sampled(tensor: torch.Tensor, fraction: float) -> torch.Tensor:
    """Every ``round(1 / fraction)``-th token (row of ``[tokens, neurons]``) of ``tensor``, the
    first included; ``tensor`` itself when nothing would be left out."""
    if fraction >= 1.0 or tensor.dim() < 2:
        return tensor
    stride = max(1, round(1.0 / fraction))
    tokens = tensor.numel() // tensor.shape[-1]
    if stride == 1 or tokens < 2 * stride:
        return tensor
    return tensor.reshape(tokens, tensor.shape[-1])[::stride]


def _first_grad_device(norms: BlockGradNorms) -> torch.device | None:
    for params in norms.params:
        for p in params:
            if p.grad is not None:
                return p.grad.device
    return None
