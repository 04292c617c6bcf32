import asyncio

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
