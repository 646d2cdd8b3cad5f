"""Fuzz target: the stream ``Decoder`` fed in arbitrary pieces.

The input is u16-length-prefixed pieces fed one by one. Only ProtocolError may escape, and the
frames must not depend on where the stream was cut: fed whole, the same bytes give the same
frames (types and sequence numbers), or the same error once the pieces reach the bad frame.
"""

from __future__ import annotations

import atheris
from _harness import main

with atheris.instrument_imports():
    from synapse_native.protocol import Decoder, ProtocolError


def pieces(data: bytes) -> list[bytes]:
    out, at = [], 0
    while at + 2 <= len(data):
        n = data[at] | data[at + 1] << 8
        out.append(data[at + 2 : at + 2 + n])
        at += 2 + n
    return out


def frames_of(chunks: list[bytes]) -> tuple[list[tuple[int, int]], bool]:
    decoder = Decoder()
    got: list[tuple[int, int]] = []
    for chunk in chunks:
        try:
            got += [(int(f.header.msg_type), f.header.seq) for f in decoder.feed(chunk)]
        except ProtocolError:
            return got, True
    return got, False


def test(data: bytes) -> None:
    chunks = pieces(data)
    cut, cut_failed = frames_of(chunks)
    whole, whole_failed = frames_of([b"".join(chunks)])
    if whole_failed or cut_failed:
        # Fed whole, a bad frame loses the good ones decoded with it in the same feed.
        assert whole_failed and cut_failed and whole == cut[: len(whole)], (whole, cut)
    else:
        assert whole == cut, (whole, cut)


if __name__ == "__main__":
    main(test)
