"""The probe inside real training steps: exactness, no host sync, checkpointing, gradients."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
from probe_models import batch, llama_like, lm_loss

import synapse_probe
from synapse_native.protocol import BlockGradNorms, HeaderFlag, LayerSummaryBatch, SummaryFlag

EVERY_STEP = math.inf
SYNCING = ("item", "cpu", "tolist", "numpy", "__bool__", "__float__", "__int__")


def sgd_steps(model: torch.nn.Module, steps: int) -> list[tuple[torch.Tensor, list[torch.Tensor]]]:
    """Loss and every parameter gradient after each of ``steps`` SGD steps."""
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    out = []
    for i in range(steps):
        opt.zero_grad()
        loss = lm_loss(model, *batch(seed=i))
        loss.backward()
        out.append((loss.detach().clone(), [p.grad.clone() for p in model.parameters()]))
        opt.step()
    return out


@pytest.mark.parametrize("grads", [False, True])
@pytest.mark.parametrize("checkpointing", [False, True])
def test_losses_and_gradients_are_bit_exact_with_the_probe(server, grads, checkpointing) -> None:
    torch.manual_seed(0)
    plain = llama_like(n_layers=2)
    probed = copy.deepcopy(plain)
    plain.model.checkpointing = probed.model.checkpointing = checkpointing
    expected = sgd_steps(plain, 3)
    with synapse_probe.attach(probed, server=server, rate_hz=EVERY_STEP, grads=grads):
        got = sgd_steps(probed, 3)
    assert len(server.summaries()) == 3
    for (loss_a, grads_a), (loss_b, grads_b) in zip(expected, got, strict=True):
        assert torch.equal(loss_a, loss_b)
        assert all(torch.equal(a, b) for a, b in zip(grads_a, grads_b, strict=True))


def test_no_host_sync_inside_probed_training_steps(server, monkeypatch) -> None:
    """Forward, backward and optimizer step run with every syncing Tensor method disabled."""
    model = llama_like(n_layers=2)
    probe = synapse_probe.attach(model, server=server, rate_hz=EVERY_STEP, grads=True)

    def forbidden(*args, **kwargs):
        raise AssertionError("host sync inside a probed training step")

    with monkeypatch.context() as patch:
        for name in SYNCING:
            patch.setattr(torch.Tensor, name, forbidden)
        sgd_steps(model, 3)
        assert probe.flush()
    dropped = probe.stats().snapshots_dropped  # the encoder behind: dropped, never waited for
    probe.close()
    summaries = server.summaries()
    sent = [step for step, _ in summaries]
    assert set(sent) <= {0, 1, 2} and sent == sorted(sent) and len(sent) + dropped == 3
    assert len(sent) >= 2  # at most one of three steps so short that the encoder lags
    assert all(len(records) == 12 for _, records in summaries)  # 6 activations, 6 gradients
    assert len(server.sparse()) == len(sent) * 6


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_no_host_sync_on_cuda(server) -> None:
    model = llama_like(n_layers=2).cuda()
    probe = synapse_probe.attach(model, server=server, rate_hz=EVERY_STEP, grads=True)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    batches = [tuple(t.cuda() for t in batch(seed=i)) for i in range(3)]
    for dtype in (torch.float32, torch.bfloat16):
        lm_loss(model, *batches[0]).backward()  # warm-up: first-use allocations
        torch.cuda.synchronize()
        torch.cuda.set_sync_debug_mode("error")
        try:
            for ids, targets in batches:
                opt.zero_grad()
                with torch.autocast("cuda", dtype=dtype, enabled=dtype != torch.float32):
                    loss = lm_loss(model, ids, targets)
                loss.backward()
                opt.step()
        finally:
            torch.cuda.set_sync_debug_mode(0)
    probe.close()
    assert len(server.summaries()) >= 6
    assert all(np.isfinite(r["mean"]).all() for _, r in server.summaries())


def test_activation_checkpointing_counts_each_site_once(server) -> None:
    model = llama_like(n_layers=2)
    model.model.checkpointing = True
    with synapse_probe.attach(model, server=server, rate_hz=EVERY_STEP, grads=True):
        sgd_steps(model, 2)
    for _, records in server.summaries():
        activations = records[(records["flags"] & SummaryFlag.GRADIENT) == 0]
        gradients = records[(records["flags"] & SummaryFlag.GRADIENT) != 0]
        assert sorted(activations["site_id"].tolist()) == list(range(6))
        assert sorted(gradients["site_id"].tolist()) == list(range(6))


def test_gradient_summaries_and_block_norms(server) -> None:
    model = llama_like(n_layers=2)
    probe = synapse_probe.attach(model, server=server, rate_hz=EVERY_STEP, grads=True)
    seen: dict[str, torch.Tensor] = {}
    mlp = model.model.layers[1].mlp

    def keep_gradient(module, args, output) -> None:
        output.register_hook(lambda g: seen.update(g=g))

    mlp.register_forward_hook(keep_gradient)
    model.zero_grad()
    lm_loss(model, *batch()).backward()
    probe.flush()
    norms = probe.latest_block_grad_norms()
    probe.close()
    ((_, records),) = server.summaries()
    gradient = records[(records["flags"] & SummaryFlag.GRADIENT) != 0]
    mlp_site = next(s.site_id for s in probe.sites if s.name == "model.layers.1.mlp")
    record = gradient[gradient["site_id"] == mlp_site][0]
    g = seen["g"].double()
    np.testing.assert_allclose(record["mean"], g.mean().item(), rtol=1e-4, atol=1e-9)
    np.testing.assert_allclose(record["std"], g.std(unbiased=False).item(), rtol=1e-4)
    assert norms is not None and norms[0] == 0
    for block, value in zip(model.model.layers, norms[1], strict=True):
        expected = torch.cat([p.grad.flatten() for p in block.parameters()]).norm()
        np.testing.assert_allclose(value, expected.item(), rtol=1e-5)
    ((step, sent),) = server.grad_norms()
    assert step == 0 and sent.dtype == np.float32
    np.testing.assert_array_equal(sent, norms[1].astype(np.float32))


def reference_block_norms(blocks: torch.nn.ModuleList) -> np.ndarray:
    """Float64 L2 norm of each block's parameter gradients (NaN for a block without any)."""
    out = []
    for block in blocks:
        grads = [p.grad.double().flatten() for p in block.parameters() if p.grad is not None]
        out.append(torch.cat(grads).norm().item() if grads else math.nan)
    return np.array(out)


def test_each_step_sends_block_grad_norms_of_its_own_backward(server) -> None:
    model = llama_like(n_layers=3)
    probe = synapse_probe.attach(model, server=server, rate_hz=EVERY_STEP, grads=True)
    for p in model.model.layers[1].parameters():  # frozen after attach: no gradient at all
        p.requires_grad_(False)
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    expected = {}
    for i in range(3):
        opt.zero_grad()
        lm_loss(model, *batch(seed=i)).backward()
        expected[probe.current_step] = reference_block_norms(model.model.layers)
        opt.step()
    probe.close()
    sent = server.grad_norms()
    assert [step for step, _ in sent] == [0, 1, 2] == sorted(expected)
    for step, norms in sent:
        assert norms.dtype == np.float32 and norms.shape == (3,)
        assert np.isnan(norms[1]) and np.isfinite(norms[[0, 2]]).all()
        np.testing.assert_allclose(norms, expected[step], rtol=1e-5)  # NaN matches NaN
    # Per step: the summary batch, the norms, then sparse frames; END_OF_STEP on the last.
    for step in range(3):
        frames = [(f, m) for s, f, m in server.messages if s == step]
        assert isinstance(frames[0][1], LayerSummaryBatch)
        assert isinstance(frames[1][1], BlockGradNorms)
        assert [bool(f & HeaderFlag.END_OF_STEP) for f, _ in frames] == [False] * (
            len(frames) - 1
        ) + [True]


def test_without_grads_no_block_grad_norms_are_sent(server) -> None:
    model = llama_like(n_layers=2)
    with synapse_probe.attach(model, server=server, rate_hz=EVERY_STEP):
        sgd_steps(model, 2)
    assert len(server.summaries()) == 2 and server.grad_norms() == []
