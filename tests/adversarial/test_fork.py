"""Issue 11 item 4: ``fork()`` while app threads use instrumented objects; the child's first
scrape (and its first instrument call) must not hang.

Before, 3-7 of 20-30 children hung on their first scrape: the scrape called the inherited
``queue.Queue.qsize()``, whose lock a parent thread held at fork time, and once
memexport's own sizer-job lock, which was not re-created after fork. Readers now never take
a user object's lock (a queue's idle count is ``len(q.queue)``; SQLAlchemy's pool is read
without its mutex), and every lock of memexport is re-created in the child
(``core.forks``). Each child is bounded by an alarm; the whole run by the subprocess timeout.
"""

from __future__ import annotations

import os
import sys

import pytest

from tests.adversarial.support import run_python

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")

SCRIPT = r"""
import collections, concurrent.futures, faulthandler, os, queue, signal, sys, threading, time
import cachetools
import memexport
from tests.adversarial.support import GuidePool, UserMapping, prometheus_text

CHILDREN = int(sys.argv[1]) if len(sys.argv) > 1 else 24
stop = threading.Event()
q = memexport.pool(queue.Queue(), name="q")
for i in range(4):
    q.put(f"r{i}")
ctx = memexport.pool(GuidePool(max_size=8), name="ctx")
ex = memexport.pool(concurrent.futures.ThreadPoolExecutor(2), name="ex")
um = memexport.cache(UserMapping(), name="um")
d = memexport.cache({}, name="d", sizer="entry")
h = memexport.conversation(collections.deque(maxlen=50), name="h")
engine = None
try:
    import sqlalchemy
    from sqlalchemy.pool import QueuePool
    engine = sqlalchemy.create_engine("sqlite://", poolclass=QueuePool, pool_size=2,
                                      max_overflow=2, pool_timeout=0.01,
                                      connect_args={"check_same_thread": False})
    memexport.pool(engine, name="sql")
except ImportError:
    pass

def work(i):
    n = 0
    ct = memexport.cache(cachetools.TTLCache(64, ttl=60), name="ct")  # not thread-safe: one each
    while not stop.is_set():
        n += 1
        r = q.get(); q.put(r)
        with ctx.acquire():
            pass
        ct[n % 97] = n; ct.get(n % 89)
        um[n % 50] = n; um.get(n)
        d[n % 50] = [n]; d.get(n % 7)
        h.append({"n": n})
        if n % 16 == 0:
            ex.submit(len, "x")
            memexport.cache({}, name=f"cold{i % 3}")   # the cold path, under its locks
        if engine is not None and n % 4 == 0:
            try:
                with engine.connect():
                    pass
            except sqlalchemy.exc.TimeoutError:
                pass

threads = [threading.Thread(target=work, args=(i,), daemon=True) for i in range(6)]
for t in threads:
    t.start()
time.sleep(0.05)
hung = 0
for n in range(CHILDREN):
    time.sleep(0.002 * (n % 5))
    pid = os.fork()
    if pid == 0:
        faulthandler.dump_traceback_later(8, exit=True)  # a hang: its stack, then exit 1
        signal.alarm(10)
        memexport.REGISTRY.collect()
        prometheus_text(memexport.REGISTRY)
        x = memexport.cache({"a": 1}, name="child")
        x["b"] = 2
        memexport.pool(queue.Queue(), name="childq")
        memexport.REGISTRY.run_tick_jobs(0.01)
        text = prometheus_text(memexport.REGISTRY)
        assert 'memexport_cache_items{cache="child"} 2.0' in text, text[-500:]
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    if not (os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0):
        hung += 1
stop.set()
for t in threads:
    t.join(10)
ex.shutdown()
print("hung", hung, "of", CHILDREN)
"""


def test_children_forked_from_busy_threads_scrape_and_instrument() -> None:
    proc = run_python(SCRIPT, timeout=150)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip().endswith("hung 0 of 24"), (proc.stdout, proc.stderr[-4000:])
    assert sys.platform != "win32"
