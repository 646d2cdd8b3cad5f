"""Trainer actions: registered with probe.on_request, run at a step boundary on the training
thread when a viewer asks, with the outcome sent back to that viewer."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from probe_models import batch, llama_like, lm_loss

import synapse_probe
from synapse_native.client import StreamClient
from synapse_native.protocol import (
    ActionList,
    ActionRequest,
    ActionResult,
    ActionStatus,
    Capability,
    MsgType,
)

TIMEOUT = 10.0


def _result(client: StreamClient) -> ActionResult:
    message = client.wait_for(MsgType.ACTION_RESULT, TIMEOUT).message
    assert isinstance(message, ActionResult)
    return message


def test_an_action_runs_at_the_next_step_boundary_on_the_training_thread() -> None:
    model = llama_like()
    probe = synapse_probe.attach(model, port=0)
    calls: list[tuple[int, str]] = []
    in_step = threading.Event()

    def checkpoint() -> str:
        assert not in_step.is_set(), "an action ran in the middle of a step"
        calls.append((probe.current_step, threading.current_thread().name))
        return "saved ckpt-7.pt"

    def broken() -> None:
        raise OSError("disk full")

    probe.on_request("checkpoint", checkpoint)
    probe.on_request("broken", broken)
    ids, targets = batch()
    try:
        with StreamClient.connect(*probe.address) as client:
            assert Capability.ACTIONS in Capability(client.hello.message.capabilities)
            listed = client.wait_for(MsgType.ACTION_LIST, TIMEOUT).message
            assert isinstance(listed, ActionList) and listed.names == ("checkpoint", "broken")
            probe.step(0)
            client.send(ActionRequest(1, "checkpoint"))
            client.send(ActionRequest(2, "broken"))
            client.send(ActionRequest(3, "nope"))
            unknown = _result(client)  # answered at once, from the event thread
            in_step.set()
            lm_loss(model, ids, targets).backward()  # the step runs: nothing may happen now
            in_step.clear()
            assert not calls
            probe.step(1)
            done, failed = _result(client), _result(client)
    finally:
        probe.close()
    assert calls == [(0, threading.main_thread().name)]  # after step 0, before step 1
    assert (done.request_id, done.status, done.step) == (1, ActionStatus.DONE, 1)
    assert done.text == "saved ckpt-7.pt"
    assert (failed.request_id, failed.status) == (2, ActionStatus.FAILED)
    assert failed.text == "OSError: disk full"
    assert (unknown.request_id, unknown.status) == (3, ActionStatus.UNKNOWN)
    assert "checkpoint" in unknown.text


def test_a_trainer_without_actions_refuses_requests() -> None:
    probe = synapse_probe.attach(llama_like(), port=0)
    try:
        with StreamClient.connect(*probe.address) as client:
            client.wait_for(MsgType.MODEL_META, TIMEOUT)
            client.send(ActionRequest(4, "checkpoint"))
            result = _result(client)
    finally:
        probe.close()
    assert result.status == ActionStatus.REFUSED and "on_request" in result.text


@pytest.mark.parametrize("name", ["", "a\nb", "x" * 65])
def test_bad_action_names_are_refused_when_registered(name: str) -> None:
    probe = synapse_probe.attach(llama_like(), port=0)
    try:
        with pytest.raises(ValueError, match="action name"):
            probe.on_request(name, lambda: None)
    finally:
        probe.close()


def test_on_request_needs_the_probe_own_server(server: Any) -> None:
    probe = synapse_probe.attach(llama_like(), server=server)
    try:
        with pytest.raises(ValueError, match="own server"):
            probe.on_request("checkpoint", lambda: None)
    finally:
        probe.close()
