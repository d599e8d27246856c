"""FairQueue: local generations on one device take turns in arrival order."""

from __future__ import annotations

import random
import threading
import time

import pytest

from hfchat.fairqueue import DeviceQueues, FairQueue


def test_turns_are_granted_in_arrival_order_not_wake_order() -> None:
    queue = FairQueue(1)
    holder = queue.enqueue()
    assert holder.wait(0) and queue.holding == 1
    tickets = [queue.enqueue() for _ in range(8)]
    order: list[int] = []

    def take_turn(i: int) -> None:
        assert tickets[i].wait(30)
        order.append(i)
        time.sleep(0.002)  # hold the turn a moment, as a generation would
        tickets[i].release()

    # Threads start in a shuffled order: only the queue decides who goes first.
    threads = [threading.Thread(target=take_turn, args=(i,)) for i in random.Random(3).sample(range(8), 8)]
    for t in threads:
        t.start()
    assert queue.waiting == 8 and order == [], "nobody runs while the slot is held"
    holder.release()
    for t in threads:
        t.join(30)
    assert order == list(range(8))
    assert queue.holding == 0 and queue.waiting == 0


def test_a_withdrawn_waiter_leaves_at_once_and_the_next_one_goes() -> None:
    queue = FairQueue(1)
    holder, stopped, nxt = queue.enqueue(), queue.enqueue(), queue.enqueue()
    stopped.withdraw()  # Stop pressed while waiting
    assert not stopped.wait(0) and queue.waiting == 1
    holder.withdraw()  # a holder's withdraw keeps its slot: its generation is still running
    assert queue.holding == 1 and not nxt.wait(0)
    holder.release()
    assert nxt.wait(5)
    nxt.release()
    nxt.release()  # idempotent
    assert queue.holding == 0


def test_slots_allow_that_many_at_once_on_every_device() -> None:
    queues = DeviceQueues()
    cpu = queues.for_device("cpu")
    assert queues.for_device("cpu") is cpu and queues.for_device("cuda:0") is not cpu
    a, b = cpu.enqueue(), cpu.enqueue()
    assert a.wait(0) and not b.wait(0)
    two = DeviceQueues(2)
    for device in ("cpu", "cuda:0"):
        queue = two.for_device(device)
        a, b, c = queue.enqueue(), queue.enqueue(), queue.enqueue()
        assert a.wait(0) and b.wait(0) and not c.wait(0) and queue.holding == 2
    with pytest.raises(ValueError):
        DeviceQueues(0)
    with pytest.raises(ValueError):
        FairQueue(0)
