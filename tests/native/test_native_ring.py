"""The record ring through its Python wrapper: semantics, limits, threads, and a model check."""

from __future__ import annotations

import threading
from collections import deque

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from synapse_native.errors import ClosedError, InvalidArgumentError, RecordTooLargeError
from synapse_native.ring import Ring

pytestmark = pytest.mark.timeout(30)


def test_records_come_back_in_order_from_any_buffer_type() -> None:
    with Ring(1024) as ring:
        assert ring.push(b"first")
        assert ring.push(bytearray(b"second"))
        assert ring.push(memoryview(b"xxthirdxx")[2:7])
        assert ring.push(b"")
        assert ring.pop() == b"first"
        assert ring.drain() == [b"second", b"third", b""]
        assert ring.pop() is None
        assert ring.drain() == []


def test_full_ring_refuses_a_record_and_keeps_the_others() -> None:
    with Ring(64) as ring:
        assert ring.push(b"a" * 20)
        assert ring.push(b"b" * 20)
        assert not ring.push(b"c" * 20)  # 2 x 24 bytes used, 24 more do not fit
        assert ring.used_bytes == 48
        assert ring.drain() == [b"a" * 20, b"b" * 20]
        assert ring.push(b"c" * 20)


def test_drain_respects_max_records() -> None:
    with Ring(4096) as ring:
        for i in range(10):
            assert ring.push(bytes([i]) * i)
        assert ring.drain(3) == [bytes([i]) * i for i in range(3)]
        assert ring.drain() == [bytes([i]) * i for i in range(3, 10)]


def test_record_larger_than_the_drain_buffer_still_drains() -> None:
    big = bytes(range(256)) * (3 << 12)  # 3 MiB: more than the initial 1 MiB batch buffer
    with Ring(4 << 20) as ring:
        assert ring.push(b"small")
        assert ring.push(big)
        assert ring.drain() == [b"small", big]
        assert ring.push(big)
        assert ring.pop() == big


def test_limits_raise_clear_errors() -> None:
    with pytest.raises(InvalidArgumentError, match="power of two"):
        Ring(1000)
    with pytest.raises(ValueError):  # InvalidArgumentError is also a ValueError
        Ring(32)
    with Ring(64) as ring:
        assert ring.max_record == 56
        with pytest.raises(RecordTooLargeError, match="57 bytes"):
            ring.push(b"x" * 57)
        with pytest.raises(TypeError):
            ring.push("text")  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="contiguous"):
            ring.push(memoryview(b"abcdef")[::2])


def test_closed_ring_refuses_use() -> None:
    ring = Ring(64)
    ring.close()
    ring.close()  # twice is fine
    with pytest.raises(ClosedError):
        ring.push(b"x")
    with pytest.raises(ClosedError):
        ring.drain()


def test_producer_and_consumer_threads_keep_every_record_intact() -> None:
    count = 50_000
    ring = Ring(1 << 14)

    def produce() -> None:
        for i in range(count):
            record = i.to_bytes(4, "little") * (i % 50)
            while not ring.push(record):
                pass

    producer = threading.Thread(target=produce)
    producer.start()
    received = 0
    while received < count:
        for record in ring.drain():
            assert record == received.to_bytes(4, "little") * (received % 50)
            received += 1
    producer.join()
    assert ring.pop() is None
    ring.close()


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.binary(max_size=120).map(lambda b: ("push", b)),
            st.integers(min_value=0, max_value=5).map(lambda n: ("drain", n)),
            st.just(("pop", None)),
        ),
        max_size=80,
    )
)
def test_ring_behaves_like_a_bounded_queue(ops: list[tuple[str, object]]) -> None:
    """Any sequence of operations on a 256-byte ring matches a byte-counting deque."""
    model: deque[bytes] = deque()

    def cost(record: bytes) -> int:
        return (4 + len(record) + 7) // 8 * 8

    with Ring(256) as ring:
        for op, arg in ops:
            if op == "push":
                assert isinstance(arg, bytes)
                fits = sum(map(cost, model)) + cost(arg) <= 256
                assert ring.push(arg) == fits
                if fits:
                    model.append(arg)
            elif op == "pop":
                assert ring.pop() == (model.popleft() if model else None)
            else:
                assert isinstance(arg, int)
                expected = [model.popleft() for _ in range(min(arg, len(model)))]
                assert ring.drain(arg) == expected
            assert ring.used_bytes == sum(map(cost, model))
