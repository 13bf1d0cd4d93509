"""A user script calling every public function of memexport: ``mypy --strict`` must pass on it
(tests/test_typing.py), and each wrapper must give back the type it was given."""

from __future__ import annotations

import functools
import queue
from collections import deque
from typing import Any

import cachetools

import memexport
import memexport.actions
from memexport.core.registry import Registry

registry = Registry()

# Caches: the wrapper returns what it was given, typed as given.
responses: cachetools.LRUCache[str, str] = memexport.cache(
    cachetools.LRUCache(maxsize=100), "llm_responses", registry=registry)
responses["q"] = "a"
sessions: dict[str, int] = memexport.cache({}, name="sessions", registry=registry)
sessions["u1"] = 1


@functools.lru_cache(maxsize=128)
def embed(text: str) -> tuple[float, ...]:
    return (float(len(text)),)


embed_cached = memexport.cache(embed, "embeddings", registry=registry)
vector: tuple[float, ...] = embed_cached("hello")


@memexport.cache(name="profiles", registry=registry)
class Profiles(dict[str, str]):
    """Every instance counted."""


profiles: Profiles = Profiles()

# Pools.
clients: queue.Queue[str] = memexport.pool(queue.Queue(), "clients", registry=registry)
clients.put("c1")
first: str = clients.get()

# Conversations and agents.
history: deque[dict[str, Any]] = memexport.conversation(deque(maxlen=10), "chat",
                                                       registry=registry)
history.append({"role": "user"})


class Agent:
    def __init__(self) -> None:
        self._memory_store: dict[str, str] = {}


planner: Agent = memexport.agent(Agent(), "planner", registry=registry)


@memexport.agent(name="workers", registry=registry)
class Worker(Agent):
    pass


worker: Worker = Worker()


# Cleanups keep the signature of what they wrap.
@memexport.cleanup(name="trim", period=60, registry=registry)
def trim(limit: int) -> int:
    return limit


trimmed: int = trim(3)
wrapped = memexport.cleanup(lambda: None, "noop", registry=registry)

# Budgets, settings, exporters.
memexport.budget(2 * 2**30, registry=registry)
memexport.budget(50 * 2**20, kind="cache", name="llm_responses", registry=registry)
memexport.configure(max_names_per_kind=500)
wsgi = memexport.make_wsgi_app(collector=False)
asgi = memexport.make_asgi_app(collector=False)
server: memexport.MetricsServer | None = None
collector = memexport.start_collector(15.0)
memexport.stop_collector()
families = memexport.REGISTRY.collect()
# Actions: a decorated function keeps its type; the built-ins are Action objects.
own_actions = memexport.actions.ActionSet()


@memexport.action(alerts="MemexportCacheOverBudget", cooldown=60, frees=True,
                  actions=own_actions)
def flush(ctx: memexport.actions.ActionContext) -> None:
    ctx.freed(1024)


shedding: memexport.actions.Action = memexport.actions.shed(alerts="*", caches={"*": 0.5})
if False:  # typed, not run: these start servers and OpenTelemetry
    server = memexport.start_http_server(0)
    receiver: memexport.actions.ActionService = memexport.start_actions(
        server, bearer_token="token", evidence_dir="/tmp/evidence", action_set=own_actions,
        actions=[shedding])
    memexport.use_opentelemetry()

# Undoing: the original object back, typed as such.
scratch: dict[str, int] = memexport.cache({}, "scratch", registry=registry)
original: dict[str, int] = memexport.uninstrument(scratch)
