"""Captures: a viewer's CAPTURE_REQUEST writes the step's full tensors to a safetensors file."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path
from typing import Any

import pytest
import torch
from probe_models import batch, llama_like, lm_loss
from safetensors import safe_open
from safetensors.torch import load_file

import synapse_probe
from synapse_native.client import StreamClient
from synapse_native.protocol import (
    Capability,
    CaptureDone,
    CaptureRequest,
    CaptureStatus,
    Decoder,
    ErrorCode,
    ErrorReport,
    ModelMeta,
    MsgType,
    encode,
)
from synapse_probe.capture import METADATA_KEY
from synapse_serve.server import Server

TIMEOUT = 10.0
ON_GPU = torch.cuda.is_available()


def _site_ids(client: StreamClient) -> dict[str, int]:
    meta = client.wait_for(MsgType.MODEL_META, TIMEOUT).message
    assert isinstance(meta, ModelMeta)
    return {site.name: site.site_id for site in meta.sites}


def _train_until_done(
    probe: synapse_probe.Probe,
    client: StreamClient,
    model: torch.nn.Module,
    record: dict[str, Any] | None = None,
) -> CaptureDone:
    """Train step after step (recording outputs per step) until CAPTURE_DONE arrives."""
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    device = next(model.parameters()).device
    ids, targets = (t.to(device) for t in batch())
    for step in range(200):
        if record is not None:
            record[step] = {}
            record["step"] = step
        probe.step(step)
        opt.zero_grad()
        lm_loss(model, ids, targets).backward()
        opt.step()
        try:
            frame = client.wait_for(MsgType.CAPTURE_DONE, 0.05)
        except TimeoutError:
            continue
        probe.step(step + 1)  # harmless: the capture is already written
        done = frame.message
        assert isinstance(done, CaptureDone)
        return done
    raise AssertionError("no CAPTURE_DONE")


def _recording_hooks(model: torch.nn.Module, names: list[str], record: dict[Any, Any]) -> None:
    """Forward hooks keeping each named module's output (and its gradient) per step."""
    modules = dict(model.named_modules())

    def hook(name: str) -> Any:
        def on_output(module: torch.nn.Module, args: Any, output: Any) -> None:
            tensor = output[0] if isinstance(output, tuple) else output
            step = record["step"]
            record[step][name] = tensor.detach().clone()
            tensor.register_hook(
                lambda g: record[step].__setitem__(name + "@grad", g.detach().clone())
            )

        return on_output

    for name in names:
        modules[name].register_forward_hook(hook(name))


DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not ON_GPU, reason="no GPU"))]


@pytest.mark.parametrize("device", DEVICES)
def test_a_capture_holds_the_step_outputs_and_gradients(tmp_path: Path, device: str) -> None:
    """On a GPU the copies are non_blocking into pinned memory, completed off-thread."""
    torch.manual_seed(0)
    model = llama_like().to(device)
    names = ["model.layers.0.mlp", "model.layers.1.self_attn"]
    record: dict[Any, Any] = {"step": -1}
    _recording_hooks(model, names, record)
    probe = synapse_probe.attach(
        model, port=0, grads=True, capture=True, capture_dir=tmp_path / "caps"
    )
    try:
        with StreamClient.connect(*probe.address) as client:
            hello = client.hello.message
            assert Capability.CAPTURE in Capability(hello.capabilities)
            by_name = _site_ids(client)
            wanted = [by_name[name] for name in names]
            client.send(CaptureRequest(41, tuple(wanted)))
            done = _train_until_done(probe, client, model, record)
    finally:
        probe.close()
    assert done.status == CaptureStatus.WRITTEN and done.request_id == 41, done
    path = Path(done.path)
    assert path.parent == (tmp_path / "caps").resolve() and path.suffix == ".safetensors"
    assert done.size == path.stat().st_size and done.sites == 2
    tensors = load_file(path)
    assert set(tensors) == {*names, *(n + "@grad" for n in names)}
    for name in names:
        expected = record[done.step][name].cpu()
        torch.testing.assert_close(tensors[name], expected, rtol=0, atol=0)
        grad = record[done.step][name + "@grad"].cpu()
        torch.testing.assert_close(tensors[name + "@grad"], grad, rtol=0, atol=0)
    with safe_open(path, "pt") as f:
        meta = json.loads(f.metadata()[METADATA_KEY])
    assert meta["step"] == done.step and meta["request_id"] == 41
    assert [s["name"] for s in meta["sites"]] == names
    assert meta["sites"][0]["shape"] == list(record[done.step][names[0]].shape)


def test_without_capture_the_trainer_refuses_and_keeps_training(tmp_path: Path) -> None:
    model = llama_like()
    probe = synapse_probe.attach(model, port=0)
    try:
        with StreamClient.connect(*probe.address) as client:
            assert Capability.CAPTURE not in Capability(client.hello.message.capabilities)
            site = next(iter(_site_ids(client).values()))
            client.send(CaptureRequest(3, (site,)))
            done = client.wait_for(MsgType.CAPTURE_DONE, TIMEOUT).message
            ids, targets = batch()
            lm_loss(model, ids, targets).backward()  # training goes on
            assert not client.closed
    finally:
        probe.close()
    assert isinstance(done, CaptureDone)
    assert done.status == CaptureStatus.DISABLED and "capture=True" in done.text
    assert done.path == "" and not list(tmp_path.iterdir())


def test_a_capture_over_the_size_cap_is_refused_and_writes_nothing(tmp_path: Path) -> None:
    model = llama_like()
    probe = synapse_probe.attach(
        model, port=0, capture=True, capture_dir=tmp_path, capture_max_mb=0.001
    )
    try:
        with StreamClient.connect(*probe.address) as client:
            site = _site_ids(client)["model.layers.0.mlp"]  # 2 x 8 x 16 x 4 bytes: fits
            client.send(CaptureRequest(1, (site,)))
            assert _train_until_done(probe, client, model).status == CaptureStatus.WRITTEN
            all_sites = tuple(_site_ids_from(probe))[:8]  # 6 sites x 1 KiB > 1.02 KiB
            client.send(CaptureRequest(2, all_sites))
            done = _train_until_done(probe, client, model)
    finally:
        probe.close()
    assert done.status == CaptureStatus.TOO_LARGE and done.request_id == 2
    assert "size cap" in done.text and done.path == ""
    assert len(list(tmp_path.iterdir())) == 1  # the first capture only


def _site_ids_from(probe: synapse_probe.Probe) -> list[int]:
    return [site.site_id for site in probe.sites]


def test_bad_requests_are_refused_with_a_reason(tmp_path: Path) -> None:
    probe = synapse_probe.attach(llama_like(), port=0, capture=True, capture_dir=tmp_path)
    try:
        with StreamClient.connect(*probe.address) as client:
            _site_ids(client)
            client.send(CaptureRequest(1, (999,)))
            unknown = client.wait_for(MsgType.CAPTURE_DONE, TIMEOUT).message
            client.send(CaptureRequest(2, tuple(range(9))))
            too_many = client.wait_for(MsgType.CAPTURE_DONE, TIMEOUT).message
            client.send(CaptureRequest(3, (0,)))  # accepted: waits for a step
            client.send(CaptureRequest(4, (1,)))
            busy = client.wait_for(MsgType.CAPTURE_DONE, TIMEOUT).message
    finally:
        probe.close()
    assert isinstance(unknown, CaptureDone) and unknown.status == CaptureStatus.BAD_REQUEST
    assert "999" in unknown.text
    assert isinstance(too_many, CaptureDone) and too_many.status == CaptureStatus.BAD_REQUEST
    assert "at most 8" in too_many.text
    assert isinstance(busy, CaptureDone) and (busy.request_id, busy.status) == (
        4,
        CaptureStatus.BUSY,
    )


def test_capture_needs_the_probe_own_server(server: Any) -> None:
    with pytest.raises(ValueError, match="own server"):
        synapse_probe.attach(llama_like(), server=server, capture=True)


def test_beyond_loopback_an_unauthenticated_viewer_cannot_ask_for_a_capture() -> None:
    """The server listens on every interface with a token: a viewer that does not prove it
    gets ERROR AUTH, and its CAPTURE_REQUEST never reaches the handler."""
    calls: list[CaptureRequest] = []
    meta = ModelMeta("tiny", 1, ())
    server = Server(meta, host="0.0.0.0", port=0, token="token-0123456789abcdef", announce=False)
    server.set_capture_handler(lambda client_id, request: calls.append(request))
    server.start()
    try:
        sock = socket.create_connection(("127.0.0.1", server.address[1]), timeout=TIMEOUT)
        sock.sendall(encode(CaptureRequest(9, (0,))))
        decoder, messages = Decoder(), []
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            try:
                data = sock.recv(65536)
            except ConnectionResetError:
                break
            if not data:
                break
            messages += [f.message for f in decoder.feed(data)]
        sock.close()
    finally:
        server.close()
    errors = [m for m in messages if isinstance(m, ErrorReport)]
    assert len(errors) == 1 and errors[0].code == ErrorCode.AUTH
    assert not calls and not any(isinstance(m, CaptureDone) for m in messages)
