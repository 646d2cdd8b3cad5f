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


def test_push_many_keeps_order_from_any_buffer_type() -> None:
    with Ring(1024) as ring:
        records = [b"first", bytearray(b"second"), memoryview(b"xxthirdxx")[2:7], b""]
        assert ring.push_many(records) == 4
        assert ring.push_many(()) == 0
        assert ring.push_many((b"tu", b"ple")) == 2
        wide = memoryview(bytes(range(8))).cast("I")  # len() is 2, the record is 8 bytes
        assert ring.push_many([wide, b"z"]) == 2
        assert ring.drain() == [
            b"first",
            b"second",
            b"third",
            b"",
            b"tu",
            b"ple",
            bytes(range(8)),
            b"z",
        ]


def test_push_many_pushes_the_prefix_that_fits() -> None:
    with Ring(64) as ring:
        assert ring.push(b"x" * 20)  # 24 of 64 bytes used
        batch = [b"a" * 10, b"b" * 12, b"c" * 20, b"d"]  # 16 + 16 fit; 24 does not
        assert ring.push_many(batch) == 2  # stops there, though b"d" (8 bytes) would fit
        assert ring.used_bytes == 56
        assert ring.push_many(batch[2:]) == 0
        assert ring.drain() == [b"x" * 20, b"a" * 10, b"b" * 12]
        assert ring.push_many(batch[2:]) == 2  # the caller pushes the rest later
        assert ring.drain() == [b"c" * 20, b"d"]


def test_push_many_wraps_around_the_end() -> None:
    # Up to 5 records of up to 40 bytes (240 ring bytes) per batch, drained after each: the
    # stream goes round the 256-byte ring many times, records crossing the end as they come.
    with Ring(256) as ring:
        sent: list[bytes] = []
        received: list[bytes] = []
        for i in range(500):
            batch = [bytes([i & 0xFF, k]) * (1 + (i * 7 + k * 13) % 20) for k in range(i % 6)]
            assert ring.push_many(batch) == len(batch)
            sent += batch
            received += ring.drain(len(batch))
        assert received == sent


def test_push_many_checks_every_record_before_pushing_any() -> None:
    with Ring(64) as ring:
        with pytest.raises(RecordTooLargeError, match="a record of 57 bytes exceeds"):
            ring.push_many([b"ok", b"x" * 57, b"ok"])
        with pytest.raises(TypeError):
            ring.push_many([b"ok", "text"])  # type: ignore[list-item]
        with pytest.raises(ValueError, match="contiguous"):
            ring.push_many([b"ok", memoryview(b"abcdef")[::2]])
        with pytest.raises(TypeError, match="sequence of records"):
            ring.push_many(b"one record")
        assert ring.used_bytes == 0
    with pytest.raises(ClosedError):
        ring.push_many([b"x"])


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


def test_batched_producer_and_consumer_threads_keep_every_record_intact() -> None:
    count = 50_000
    ring = Ring(1 << 14)

    def record(i: int) -> bytes:
        return i.to_bytes(4, "little") * (i % 50)

    def produce() -> None:
        i = 0
        while i < count:
            batch = [record(k) for k in range(i, min(i + 1 + i % 40, count))]
            while batch:  # push what does not fit again, until it does
                pushed = ring.push_many(batch)
                batch = batch[pushed:]
                i += pushed

    producer = threading.Thread(target=produce)
    producer.start()
    received = 0
    while received < count:
        for got in ring.drain():
            assert got == record(received)
            received += 1
    producer.join()
    assert ring.pop() is None
    ring.close()


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.binary(max_size=120).map(lambda b: ("push", b)),
            st.lists(st.binary(max_size=60), max_size=6).map(lambda bs: ("push_many", bs)),
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
            elif op == "push_many":
                assert isinstance(arg, list)
                used = sum(map(cost, model))
                fitting = 0
                while fitting < len(arg) and used + cost(arg[fitting]) <= 256:
                    used += cost(arg[fitting])
                    fitting += 1
                assert ring.push_many(arg) == fitting  # the prefix that fits
                model.extend(arg[:fitting])
            elif op == "pop":
                assert ring.pop() == (model.popleft() if model else None)
            else:
                assert isinstance(arg, int)
                expected = [model.popleft() for _ in range(min(arg, len(model)))]
                assert ring.drain(arg) == expected
            assert ring.used_bytes == sum(map(cost, model))
