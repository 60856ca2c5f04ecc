"""The receiver thread: hands over every batch in order, re-raises the source's error in the
consumer, and stops when the consumer leaves early."""
import threading

import pytest

from whaleflow.data.receiver import received


def test_every_item_in_order_and_the_thread_ends():
    stop = threading.Event()
    out, thread = received(iter(range(100)), depth=2, stop=stop)
    assert list(out) == list(range(100))
    thread.join(5)
    assert not thread.is_alive() and stop.is_set()


def test_the_source_error_is_raised_in_the_consumer():
    def source():
        yield 1
        raise ValueError("worker said no")

    out, thread = received(source(), depth=2, stop=threading.Event())
    assert next(out) == 1
    with pytest.raises(ValueError, match="worker said no"):
        next(out)
    thread.join(5)
    assert not thread.is_alive()


def test_a_consumer_that_leaves_early_stops_the_thread():
    taken = []

    def source():
        for i in range(10_000):
            taken.append(i)
            yield i

    stop = threading.Event()
    out, thread = received(source(), depth=2, stop=stop)
    assert next(out) == 0
    out.close()  # what a step's exception or a stopped trial does to the epoch's generator
    thread.join(5)
    assert not thread.is_alive() and stop.is_set()
    assert len(taken) <= 5  # the batch handed over, the queue's two, the one in hand, one more
