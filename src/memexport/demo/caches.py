"""Demo caches: an LLM-response TTL cache, an lru_cache'd embedder, a get/put tool-result
cache written the guide's way, a dict of user profiles, and in ``leak`` an unbounded memo.

Every scenario produces hits, misses and evictions (capacity, expiry, explicit deletes);
the response cache has a byte budget (``memexport.budget(kind="cache")``).
"""

from __future__ import annotations

import functools
import random
import sys
import time
from collections import OrderedDict
from typing import Any

import memexport
from memexport.demo.app import ACCELERATED, Part

#: Byte budget of the response cache, compared by MemexportCacheOverBudget.
RESPONSES_BUDGET = 8 * 2**20
#: Lookups per cache per tick (small: the demo must stay light on CPU).
LOOKUPS_PER_TICK = 20


class ToolResultCache:
    """A tool-result cache written the way the guide's MemoryBoundedLRUCache is: get/put,
    an OrderedDict, a ``sys.getsizeof`` byte estimate and its own eviction loop."""

    def __init__(self, max_memory_mb: int = 4, max_items: int = 200) -> None:
        self.max_memory_mb = max_memory_mb
        self.max_items = max_items
        self.cache: OrderedDict[str, Any] = OrderedDict()
        self.memory_usage = 0

    def get(self, key: str) -> Any:
        if key in self.cache:
            self.cache.move_to_end(key)
            return self.cache[key]
        return None

    def put(self, key: str, value: Any) -> None:
        size = sys.getsizeof(value)
        while (self.memory_usage + size > self.max_memory_mb * 2**20
               or len(self.cache) >= self.max_items):
            if not self.cache:
                break
            _old_key, old = self.cache.popitem(last=False)
            self.memory_usage -= sys.getsizeof(old)
        self.cache[key] = value
        self.memory_usage += size


class _BoundedDict(OrderedDict):  # type: ignore[type-arg]
    """An insertion-ordered dict dropping its oldest entry when full (no cachetools)."""

    def __init__(self, maxsize: int) -> None:
        super().__init__()
        self.maxsize = maxsize

    def __setitem__(self, key: Any, value: Any) -> None:
        super().__setitem__(key, value)
        if len(self) > self.maxsize:
            self.popitem(last=False)


def _message(rng: random.Random, n: int) -> dict[str, Any]:
    words = ("the", "agent", "calls", "a", "tool", "with", "context", "and", "returns", "json")
    return {"role": "assistant", "content": " ".join(rng.choice(words) for _ in range(n)),
            "tokens": n}


@functools.lru_cache(maxsize=256)
def _embed(text: str) -> tuple[float, ...]:
    rng = random.Random(text)
    return tuple(rng.random() for _ in range(64))


class CacheTraffic:
    """One tick of cache traffic: skewed keys, so hot entries hit and the tail misses."""

    def __init__(self, leak: bool, seed: int = 3) -> None:
        self.rng = random.Random(seed)
        try:
            import cachetools
        except ImportError:  # cachetools is optional: a bounded mapping of our own instead
            self.responses: Any = memexport.cache(_BoundedDict(500), name="llm_responses",
                                                  max_items=500)
        else:
            self.responses = memexport.cache(cachetools.TTLCache(maxsize=500, ttl=120),
                                             name="llm_responses")
        memexport.budget(RESPONSES_BUDGET, kind="cache", name="llm_responses")
        self.embed = memexport.cache(_embed, name="embeddings")
        self.tools = memexport.cache(ToolResultCache(max_items=200), name="tool_results")
        self.profiles: dict[str, Any] = memexport.cache({}, name="user_profiles")
        self.leaky: dict[str, Any] | None = (
            memexport.cache({}, name="request_memo") if leak else None)
        self.last_leak = time.monotonic()

    def _key(self, prefix: str, hot: int, tail: int) -> str:
        rng = self.rng
        n = rng.randrange(hot) if rng.random() < 0.7 else hot + rng.randrange(tail)
        return f"{prefix}-{n}"

    def step(self, tick: int) -> None:
        rng = self.rng
        for _ in range(LOOKUPS_PER_TICK):
            key = self._key("prompt", 100, 2000)
            if self.responses.get(key) is None:
                self.responses[key] = _message(rng, rng.randrange(20, 400))
            self.embed(self._key("doc", 150, 600))
            tool_key = self._key("search", 80, 1000)
            if self.tools.get(tool_key) is None:
                self.tools.put(tool_key, _message(rng, rng.randrange(10, 200)))
            user = self._key("user", 300, 300)
            try:
                self.profiles[user]["seen"] += 1
            except KeyError:
                self.profiles[user] = {"seen": 1, "prefs": [rng.random() for _ in range(16)]}
        if tick % 5 == 0 and self.profiles:
            # Users logging out: the app deletes their profiles (explicit evictions).
            for key in list(self.profiles.keys())[:10]:
                del self.profiles[key]
        if self.leaky is not None:
            # A memo keyed by request id: never hit again, never evicted.
            if ACCELERATED:  # by the clock, whatever a tick takes; written, so it is resident
                now = time.monotonic()
                size = int(ACCELERATED["bytes_per_second"] * (now - self.last_leak))
                self.last_leak = now
                self.leaky[f"req-{tick}"] = b"x" * size
            else:
                for i in range(5):
                    self.leaky[f"req-{tick}-{i}"] = _message(rng, 100)


def parts(scenario: str) -> list[Part]:
    return [CacheTraffic(leak=scenario == "leak")]
