"""What every atheris harness shares: seeds from the golden vectors, a per-input memory check,
and the one ``main`` that runs a target under libFuzzer's options (``fuzz/README.md``)."""

from __future__ import annotations

import json
import sys
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import atheris

ROOT = Path(__file__).resolve().parent.parent
VECTORS = ROOT / "tests" / "vectors" / "protocol_v1.json"
FIXED_BYTES = 64 * 1024
MEMORY_EVERY = 16  # one input in this many runs under tracemalloc (it slows each run ~3x)


def golden_frames() -> list[bytes]:
    """Every frame of the golden vectors: good, skipped and bad."""
    vectors = json.loads(VECTORS.read_text())
    return [
        bytes.fromhex("".join(case["hex"]))
        for group in ("good", "skipped", "bad")
        for case in vectors[group]
    ]


def bounded(
    test: Callable[[bytes], None], per_byte: int, fixed: int = FIXED_BYTES
) -> Callable[[bytes], None]:
    """``test`` with a check, on every MEMORY_EVERY-th input, that it never holds more new
    Python allocations at once than ``per_byte`` bytes per input byte plus ``fixed``: whatever a
    frame announces, a parser allocates only for what actually arrived."""
    runs = 0

    def run(data: bytes) -> None:
        nonlocal runs
        runs += 1
        if runs % MEMORY_EVERY:
            test(data)
            return
        tracemalloc.start()
        try:
            test(data)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        if peak > fixed + per_byte * len(data):
            raise AssertionError(f"{peak} bytes allocated for a {len(data)}-byte input")

    return run


def main(test: Callable[[bytes], None], per_byte: int = 16, fixed: int = FIXED_BYTES) -> None:
    """Run ``test`` under atheris with the command line's libFuzzer options."""
    atheris.Setup(sys.argv, bounded(test, per_byte, fixed))
    atheris.Fuzz()
