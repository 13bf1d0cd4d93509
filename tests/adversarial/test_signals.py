"""Issue 11 item 9: a signal handler that instruments, firing every millisecond or two while
the main thread instruments, uses, scrapes and drops objects, never deadlocks.

Before, it deadlocked on memexport's non-reentrant locks (``_estimate_lock``,
``_instrumented_lock``, ``_jobs_lock``), and an interrupted first ``memexport.cache`` call
left ``memexport.integrations.cachetools`` partially imported. Every lock a handler can meet
is now re-entrant, and an adapter asked for while this thread imports it is refused with
``AdapterLoading`` (the handler counts those); afterwards the adapter is whole. The run is a
subprocess bounded by a timeout, and by a count of handler calls, not by time.
"""

from __future__ import annotations

import os
import signal

import pytest

from tests.adversarial.support import run_python

pytestmark = pytest.mark.skipif(not hasattr(signal, "setitimer"), reason="needs setitimer")

SCRIPT = r"""
import collections, faulthandler, queue, signal, sys
import cachetools   # the app's import; memexport's adapter for it is imported by the first call
faulthandler.dump_traceback_later(50, exit=True)    # a deadlock: its stack, then exit 1
import memexport
from tests.adversarial.support import (AdapterLoading, Agent, ConversationManager, GetPutCache,
                                      GuidePool, adapters_loaded)

calls = {"ok": 0, "refused": 0, "depth": 0}
keep = []

def handler(signum, frame):
    if calls["depth"] > 8:   # the app's own guard: on a loaded machine a handler slower than
        return               # the 1 ms interval would otherwise nest until RecursionError
    calls["depth"] += 1
    try:
        n = calls["ok"]
        keep.append(memexport.cache(cachetools.LRUCache(4), name=f"sig{n % 7}"))
        keep.append(memexport.cache({"a": n}, name="sig_dict"))
        keep.append(memexport.cache(GetPutCache(), name=f"sig_getput{n % 3}"))
        keep.append(memexport.conversation(collections.deque(maxlen=3), name="sig_deque"))
        keep.append(memexport.conversation(ConversationManager(), name="sig_manager"))
        q = memexport.pool(queue.Queue(), name=f"sig_q{n % 5}")
        q.put("r")       # (handlers nest: another may have run since the line above)
        keep.append(q)
        keep.append(memexport.agent(Agent(), name="sig_agent"))
        calls["ok"] += 1
    except AdapterLoading:
        calls["refused"] += 1
    finally:
        calls["depth"] -= 1
    if len(keep) > 70:
        del keep[:35]

signal.signal(signal.SIGALRM, handler)
signal.setitimer(signal.ITIMER_REAL, 0.0005, 0.001)
main = []                  # the first cachetools call (its adapter's import) races the handler
i = 0
while calls["ok"] < 400:
    i += 1
    c = memexport.cache(cachetools.TTLCache(8, ttl=60), name=f"main{i % 11}")
    c[i] = i
    c.get(i)
    p = memexport.pool(GuidePool(), name=f"main_pool{i % 4}")
    with p.acquire():
        pass
    h = memexport.conversation(collections.deque(maxlen=4), name="main_h")
    h.append(i)
    memexport.agent(Agent(), name=f"main_agent{i % 3}")
    main.append((c, p, h))
    if len(main) > 50:
        del main[:25]
    if i % 25 == 0:
        memexport.REGISTRY.collect()
        memexport.REGISTRY.run_tick_jobs(0.002)
signal.setitimer(signal.ITIMER_REAL, 0, 0)
assert adapters_loaded().get("memexport.integrations.cachetools") is True, adapters_loaded()
whole = memexport.cache(cachetools.LRUCache(4), name="whole")
whole["k"] = 1
assert whole["k"] == 1
assert vars(type(whole)).get("__memexport_moved__") is cachetools.LRUCache, type(whole)
text = {f.name: f.samples for f in memexport.REGISTRY.collect()}
hits = [v for ls, v in text["memexport_cache_requests_total"]
        if ls == {"cache": "whole", "result": "hit"}]
assert hits == [1.0], hits
print("ok", calls["ok"], "refused", calls["refused"], "main", i)
"""


def test_a_signal_handler_instrumenting_every_millisecond_never_deadlocks() -> None:
    proc = run_python(SCRIPT, timeout=90)
    assert proc.returncode == 0, (proc.stdout, proc.stderr[-4000:])
    words = proc.stdout.split()
    assert words[0] == "ok" and int(words[1]) >= 400, proc.stdout
    assert "Traceback" not in proc.stderr, proc.stderr[-4000:]
    assert os.name == "posix"
