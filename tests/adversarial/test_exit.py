"""Issue 11 item 3: interpreter exit with instrumented objects in use.

Before, the proxies' ``weakref.finalize`` hooks ran at exit and emptied the proxies'
internals while they were still in use: an atexit handler persisting a cache failed
(``'NoneType' object is not subscriptable``) and daemon threads still using a cache printed a
traceback on every exit. Proxies now hold no finalizer (nothing to release when they die).
Each run is a subprocess with daemon threads hammering every shape while the main thread
exits; nothing may reach stderr, and the atexit handler must see whole caches.
"""

from __future__ import annotations

import pytest

from tests.adversarial.support import run_python

SCRIPT = r"""
import atexit, collections, functools, queue, sys, threading, time
import cachetools
import memexport
from tests.adversarial.support import GetPutCache, GuidePool, UserMapping

MODE = sys.argv[1] if len(sys.argv) > 1 else "return"

@atexit.register
def last():                  # registered first, so it runs after every other exit hook
    persist()
    time.sleep(0.05)         # the daemon threads keep using every cache meanwhile

lru = memexport.cache(cachetools.LRUCache(1000), name="lru")
ttl = memexport.cache(cachetools.TTLCache(1000, ttl=600), name="ttl")
sessions = memexport.cache({}, name="sessions", sizer="entry")
mapping = memexport.cache(UserMapping(), name="mapping")
getput = memexport.cache(GetPutCache(), name="getput")
history = memexport.conversation(collections.deque(maxlen=100), name="history")
q = memexport.pool(queue.Queue(), name="q")
q.put("r")
# lru_cache wrappers read their counts as they die: some die only in the interpreter's
# teardown, when module globals are already gone.
memos = [memexport.cache(functools.lru_cache(maxsize=8)(lambda x: x), name="memo")
         for _ in range(20)]
pool = memexport.pool(GuidePool(), name="pool")
lock = threading.Lock()
if MODE == "collector":
    memexport.start_collector(0.05)

def hammer(i):
    n = 0
    while True:
        n += 1
        with lock:           # cachetools caches are not thread-safe: the app's own lock
            lru[n % 500] = n
            lru.get(n % 300)
            ttl[n % 500] = n
        sessions[f"u{n % 100}"] = {"n": n}
        sessions.get("u1")
        mapping[n % 50] = n
        getput.put(n % 40, n)
        getput.get(n % 30)
        history.append({"n": n})
        memos[n % 20](n % 4)
        r = q.get()
        q.put(r)
        with pool.acquire():
            pass

for i in range(4):
    threading.Thread(target=hammer, args=(i,), daemon=True).start()

@atexit.register
def persist():
    with lock:
        data = {"lru": dict(lru), "ttl": len(ttl), "sessions": dict(sessions.items()),
                "mapping": len(mapping), "getput": getput.get(1) is not None or True,
                "history": len(list(history))}
    assert len(data["lru"]) == 500 and data["ttl"] == 500, data
    assert len(data["sessions"]) == 100 and data["history"] == 100, data
    memexport.REGISTRY.collect()       # a scrape at exit works too
    print("persisted", len(data["lru"]), len(data["sessions"]), flush=True)

time.sleep(0.3)
if MODE == "exit":
    sys.exit(0)
"""


@pytest.mark.parametrize("mode", ["return", "exit", "collector"])
def test_exit_with_live_daemon_threads_and_an_atexit_handler(mode: str) -> None:
    for _ in range(2):
        proc = run_python(SCRIPT.replace('sys.argv[1] if len(sys.argv) > 1 else "return"',
                                         repr(mode)), timeout=60)
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert proc.stdout.split("\n")[:2] == ["persisted 500 100"] * 2, (
            proc.stdout, proc.stderr[-3000:])
        assert proc.stderr == "", proc.stderr[-3000:]
