"""kopf's handlers run on the event loop: the work queue and the caches they feed are not thread-safe."""

import inspect
import re
from pathlib import Path

from msjob_operator.controller import handlers


def test_every_kopf_handler_is_a_coroutine_so_kopf_never_runs_it_in_a_thread():
    defined_here = {name: fn for name, fn in vars(handlers).items()
                    if inspect.isfunction(fn) and fn.__module__ == handlers.__name__ and not name.startswith("_")}
    assert {"login", "start", "stop", "msjob_changed", "reconcile_health"} <= set(defined_here)
    assert [name for name, fn in defined_here.items() if not inspect.iscoroutinefunction(fn)] == []


def test_only_handlers_that_never_read_kopfs_diff_base_are_registered():
    # handlers.NoDiffBase keeps no diff base: a change handler (on.create, on.update, on.field, ...)
    # would need kopf's own storage back.
    used = set(re.findall(r"@kopf\.on\.(\w+)", Path(handlers.__file__).read_text()))
    assert used == {"login", "startup", "cleanup", "event", "probe"}
    storage = handlers.NoDiffBase()
    assert storage.fetch(body={}) is None and storage.build(body={"spec": {"x": 1}}) == {}
