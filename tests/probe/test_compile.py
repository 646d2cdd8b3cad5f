"""A model under torch.compile (aot_eager backend) still trains, and is measured, with the probe."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from probe_models import batch, llama_like, lm_loss

import synapse_probe

EVERY_STEP = math.inf


@pytest.fixture(autouse=True)
def fresh_dynamo():
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


def compiled_steps(model: torch.nn.Module, steps: int) -> list[torch.Tensor]:
    compiled = torch.compile(model, backend="aot_eager")
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    losses = []
    for i in range(steps):
        opt.zero_grad()
        loss = lm_loss(compiled, *batch(seed=i))
        loss.backward()
        opt.step()
        losses.append(loss.detach())
    return losses


def test_compiled_model_trains_and_streams_with_unchanged_losses(server) -> None:
    torch.manual_seed(0)
    plain = llama_like(n_layers=2)
    probed = copy.deepcopy(plain)
    expected = compiled_steps(plain, 3)
    torch._dynamo.reset()
    with synapse_probe.attach(probed, server=server, rate_hz=EVERY_STEP, grads=True):
        got = compiled_steps(probed, 3)
    for a, b in zip(expected, got, strict=True):
        assert torch.equal(a, b)
    assert server.steps() == [0, 1, 2]
    for _, records in server.summaries():
        assert len(records) == 12  # 6 activation sites and their gradients


def graph_pieces_per_forward(model: torch.nn.Module) -> int:
    """How many compiled graphs one forward of ``torch.compile(model)`` runs."""
    calls = [0]

    def counting_backend(gm: torch.fx.GraphModule, inputs: list) -> object:
        def run(*args: object) -> object:
            calls[0] += 1
            return gm.forward(*args)

        return run

    compiled = torch.compile(model, backend=counting_backend)
    compiled(batch(seed=0)[0])  # compiles
    calls[0] = 0
    compiled(batch(seed=1)[0])
    return calls[0]


@pytest.mark.parametrize(("per_block", "most"), [("residual", 1), ("attn+mlp+residual", 5)])
def test_each_hooked_module_costs_a_graph_break(server, per_block: str, most: int) -> None:
    """Hooks run outside the graph (torch.compiler.disable): the graph splits around them."""
    n_layers = 3
    model = llama_like(n_layers=n_layers)
    assert graph_pieces_per_forward(model) == 1
    torch._dynamo.reset()
    with synapse_probe.attach(model, server=server, rate_hz=EVERY_STEP, per_block=per_block):
        pieces = graph_pieces_per_forward(model)
    assert 1 < pieces <= 1 + most * n_layers
