"""Fuzz target: the app's batch decoder and the C sparse scanner behind it (``grid.c`` via cffi).

The input is u16-length-prefixed frames. Only ProtocolError may escape ``decode_batch``, and the
C scanner must agree with the Python codec: a run of frames passes ``decode_sparse_run`` exactly
when every frame decodes as SPARSE_ACTIVATIONS, with the same fields and arrays.
"""

from __future__ import annotations

import contextlib

import atheris
import numpy as np
from _harness import main

with atheris.instrument_imports():
    from synapse_desktop.net.batch import decode_batch, decode_sparse_run
    from synapse_native.protocol import ProtocolError, SparseActivations, decode_frame


def frames_of(data: bytes) -> list[bytes]:
    out, at = [], 0
    while at + 2 <= len(data):
        n = data[at] | data[at + 1] << 8
        out.append(data[at + 2 : at + 2 + n])
        at += 2 + n
    return out


def codec_view(frames: list[bytes]) -> list[SparseActivations] | None:
    """The frames as the codec decodes them, or None if any is not a good sparse frame."""
    decoded = []
    for frame in frames:
        try:
            one = decode_frame(frame)
        except ProtocolError:
            return None
        if one is None or not isinstance(one.message, SparseActivations):
            return None
        decoded.append(one.message)
    return decoded


def test(data: bytes) -> None:
    frames = frames_of(data)
    with contextlib.suppress(ProtocolError):
        decode_batch(frames)
    run = decode_sparse_run(frames)
    expected = codec_view(frames)
    if run is None:
        assert expected is None or not frames, "the C scanner refused frames the codec accepts"
        return
    assert expected is not None, "the C scanner accepted frames the codec refuses"
    for k, message in enumerate(expected):
        assert run.site_id[k] == message.site_id and run.n_above[k] == message.n_above
        assert np.array_equal(run.indices[k], message.indices)
        assert np.array_equal(run.values[k].view(np.uint32), message.values.view(np.uint32))


if __name__ == "__main__":
    main(test)
