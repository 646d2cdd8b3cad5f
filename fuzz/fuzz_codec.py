"""Fuzz target: ``decode_frame`` on one whole frame, every message type.

Only ProtocolError may escape. A frame that decodes must say what its header says (type, length).
"""

from __future__ import annotations

import atheris
from _harness import main

with atheris.instrument_imports():
    from synapse_native.protocol import HEADER_SIZE, ProtocolError, decode_frame


def test(data: bytes) -> None:
    try:
        frame = decode_frame(data)
    except ProtocolError:
        return
    if frame is not None:
        assert frame.header.payload_length == len(data) - HEADER_SIZE
        assert int(frame.header.msg_type) == data[6] | data[7] << 8


if __name__ == "__main__":
    main(test)
