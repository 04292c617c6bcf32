import asyncio

from msjob_operator.controller import queue as queue_module
from msjob_operator.controller.queue import WorkQueue


def run(coro):
    return asyncio.run(coro)


def test_a_key_is_queued_once_and_never_processed_twice_at_once():
    async def scenario():
        queue = WorkQueue(min_interval=0.05)
        queue.add("a")
        queue.add("a")
        queue.add("b")
        assert len(queue) == 2
        key = await queue.get()
        assert key == "a"
        queue.add("a")  # changed while processing: not queued beside the running pass
        assert len(queue) == 1
        queue.done("a")
        assert len(queue) == 1  # ...but comes back after the pause
        assert await queue.get() == "b"
        queue.done("b")
        assert await asyncio.wait_for(queue.get(), 1) == "a"
        queue.done("a")
        queue.close()
    run(scenario())


def test_a_key_asked_again_goes_next_ahead_of_the_waiting_ones_and_once():
    async def scenario():
        queue = WorkQueue(min_interval=5)  # a changed key would wait 5 s: "again" does not
        queue.add("a")
        queue.add("b")
        queue.add("c")
        assert await queue.get() == "a"
        queue.again("a")  # its pass created what its next step needs
        queue.add("a")  # and it changed meanwhile: still one pass, the next one
        queue.done("a")
        assert len(queue) == 3
        assert await queue.get() == "a"
        queue.done("a")  # no "again" this time, no change: not queued
        assert [await queue.get() for _ in range(2)] == ["b", "c"]
        assert len(queue) == 0
        queue.close()
    run(scenario())


def test_add_after_keeps_the_earliest_timer():
    async def scenario():
        queue = WorkQueue()
        queue.add_after("a", 5)
        queue.add_after("a", 0.01)
        assert await asyncio.wait_for(queue.get(), 1) == "a"
        queue.done("a")
        queue.add_after("b", 0.01)
        queue.forget("b")
        queue.add_after("c", 0.05)
        # "c" was due after "b": getting "c" first (and nothing else queued) shows "b" never fired.
        assert await asyncio.wait_for(queue.get(), 1) == "c"
        assert len(queue) == 0
        queue.close()
    run(scenario())


def recording_timers(queue: WorkQueue, monkeypatch) -> list[tuple[str, float]]:
    """Every add_after the queue asks for, as (key, delay); the timers still run."""
    asked: list[tuple[str, float]] = []
    original = queue.add_after

    def add_after(key, delay):
        asked.append((key, delay))
        original(key, delay)
    monkeypatch.setattr(queue, "add_after", add_after)
    return asked


def test_a_change_during_processing_comes_back_after_min_interval(monkeypatch):
    async def scenario():
        queue = WorkQueue(min_interval=0.01)
        asked = recording_timers(queue, monkeypatch)
        queue.add("a")
        assert await queue.get() == "a"
        queue.done("a")
        assert asked == [] and len(queue) == 0  # unchanged: no second pass
        queue.add("a")
        assert await queue.get() == "a"
        queue.add("a")
        queue.add("a")
        queue.done("a")
        assert asked == [("a", 0.01)]
        assert await asyncio.wait_for(queue.get(), 5) == "a"  # once, however many changes
        queue.done("a")
        assert len(queue) == 0
        queue.close()
    run(scenario())


def test_two_workers_never_hold_the_same_key():
    async def scenario():
        queue = WorkQueue(min_interval=0.001)
        holding: set[str] = set()
        overlaps: list[str] = []
        passes: list[str] = []

        async def worker():
            while True:
                key = await queue.get()
                if key in holding:
                    overlaps.append(key)
                holding.add(key)
                passes.append(key)
                queue.add(key if len(passes) < 20 else "done")  # every pass changes its own key
                await asyncio.sleep(0)
                holding.discard(key)
                queue.done(key)

        queue.add("a")
        queue.add("b")
        workers = [asyncio.create_task(worker()) for _ in range(4)]
        await asyncio.wait_for(_until(lambda: "done" in passes), 5)
        for task in workers:
            task.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
        queue.close()
        assert overlaps == [] and {"a", "b"} <= set(passes)
    run(scenario())


async def _until(condition):
    while not condition():
        await asyncio.sleep(0.001)


def test_retry_backoff_doubles_per_key_and_only_for_that_key(monkeypatch):
    async def scenario():
        queue = WorkQueue()
        asked = recording_timers(queue, monkeypatch)
        assert [queue.retry("a") for _ in range(4)] == [0.4, 0.8, 1.6, 3.2]
        assert queue.retry("b") == 0.4  # another job keeps its own pace
        queue.succeeded("a")
        assert queue.retry("a") == 0.4  # a success starts the count again
        for _ in range(30):
            delay = queue.retry("c")
        assert delay == 30.0  # capped
        assert asked[:5] == [("a", 0.4), ("a", 0.8), ("a", 1.6), ("a", 3.2), ("b", 0.4)]
        queue.close()
    run(scenario())


def test_forget_drops_the_timer_and_the_failures(monkeypatch):
    monkeypatch.setattr(queue_module, "RETRY_BASE_SECONDS", 0.001)

    async def scenario():
        queue = WorkQueue()
        queue.retry("a")
        queue.retry("a")
        queue.forget("a")
        assert queue.retry("a") == 0.001  # the failures are forgotten...
        queue.forget("a")
        queue.add_after("b", 0.05)
        # ...and so is the timer: "a" was due long before "b", yet "b" comes first and alone.
        assert await asyncio.wait_for(queue.get(), 5) == "b"
        assert len(queue) == 0
        queue.close()
    run(scenario())


def test_a_later_timer_does_not_replace_an_earlier_one():
    async def scenario():
        queue = WorkQueue()
        queue.add_after("a", 0.01)
        queue.add_after("a", 60)  # the earlier timer stays
        assert await asyncio.wait_for(queue.get(), 5) == "a"
        queue.close()
    run(scenario())
