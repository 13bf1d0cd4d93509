"""A soak of memexport's own memory and threads, with and without the collector thread.

200,000 create/instrument/use/free cycles of per-request caches (and a few other shapes),
scraped now and then, in a fresh interpreter: between the end of the warm-up and the end of
the run, the process's RSS, the Python objects alive and the thread count must stay flat.
Bounded by count, not time (well under a minute on 2 cores).
"""

from __future__ import annotations

import json

import pytest

from tests.adversarial.support import run_python

SCRIPT = r"""
import collections, functools, gc, json, sys, threading
import cachetools, psutil
import memexport
from tests.adversarial.support import GetPutCache

COLLECTOR = sys.argv[1] == "collector"
CYCLES = 200_000
reg = memexport.REGISTRY
if COLLECTOR:
    memexport.start_collector(0.05)
proc = psutil.Process()
kept = [memexport.cache({}, name="kept")]

def cycle(i):
    k = i % 8
    if k < 4:
        c = memexport.cache({"user": i}, name="req_dict")
        c["a"] = i
        c.get("b")
    elif k == 4:
        c = memexport.cache(cachetools.LRUCache(4), name="req_ct")
        c[i] = i
    elif k == 5:
        c = memexport.cache(GetPutCache(), name="req_gp")
        c.put(i, i)
    elif k == 6:
        c = memexport.cache(functools.lru_cache(maxsize=2)(abs), name="req_lru")
        c(-i)
    else:
        c = memexport.conversation(collections.deque(maxlen=4), name="req_h")
        c.append({"n": i})
    kept[0][i % 64] = i

def snapshot():
    gc.collect()
    reg.collect()
    return {"rss": proc.memory_info().rss, "objects": len(gc.get_objects()),
            "threads": threading.active_count()}

marks = {}
for i in range(CYCLES):
    cycle(i)
    if i % 20_000 == 0:
        reg.collect()   # an occasional scrape
    if i in (40_000, CYCLES - 1):
        marks[i] = snapshot()
if COLLECTOR:
    memexport.stop_collector()
marks["live"] = reg.live_components()
print(json.dumps(marks))
"""


@pytest.mark.parametrize("mode", ["no collector", "collector"])
def test_soak_memory_objects_and_threads_stay_flat(mode: str) -> None:
    proc = run_python(SCRIPT.replace("sys.argv[1]", repr(mode.replace("no ", "no_"))),
                      timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    marks = json.loads(proc.stdout)
    warm, end = marks["40000"], marks["199999"]
    assert end["threads"] == warm["threads"], marks
    assert end["objects"] - warm["objects"] < 2_000, marks   # not one per cycle (160,000)
    assert end["rss"] - warm["rss"] < 8 * 2**20, marks       # not 1 KB per cycle (160 MB)
    assert marks["live"] <= 2, marks
