"""The replayed scenarios: healthy histories that must stay quiet and faults with deadlines.

Every scenario is one target running the same app -- bounded caches, two pools, chat and
support sessions, a LangGraph saver, task agents, a cleanup job -- on a 4 GiB container
(unless said otherwise), with a GC sawtooth of +-15 % on its memory and restarts as failed
scrapes with counter resets. Each fault changes one thing at its onset.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from app import (
    ONE,
    ZERO,
    Cache,
    Cleanup,
    Fn,
    GiB,
    MiB,
    Pool,
    Process,
    Sessions,
    const,
    daily,
    leaked_since,
)
from app import saw as sawtooth
from app import warm as warmed
from history import Ctx, History, Model
from replay import Expect, Scenario

H, M = 3600.0, 60.0
SILENT = (Expect("silent"),)


def ticket(within: float) -> Expect:
    return Expect("ticket", within)


def page(within: float) -> Expect:
    return Expect("page", within)


def page_before(*events: str) -> Expect:
    return Expect("page_before", events=events or ("oom",))


def rss_of(level: float = 1.4 * GiB, traffic: Fn = ONE, amp: float = 0.15,
           leak: Callable[[Ctx], float] = ZERO) -> Fn:
    """Warm-up to ``level`` (scaled by traffic), the sawtooth, plus leaked bytes."""
    def f(c: Ctx) -> float:
        load = 0.75 + 0.25 * traffic(c)
        return 120 * MiB + warmed(c) * level * load * sawtooth(c, amp) + leak(c)
    return f


def default_caches(traffic: Fn = ONE) -> list[Cache]:
    """An LLM-response cache (bounded, with a byte budget) and a user-profile dict (unbounded,
    entries deleted after about 2 hours)."""
    return [
        Cache("llm_responses", 20_000, lambda c: 5 * traffic(c),
              lambda c, fill: 0.8 * min(1.0, 2 * fill), entry_bytes=1024, budget=64 * MiB),
        Cache("user_profiles", None, lambda c: 2 * traffic(c), lambda c, fill: 0.7 * fill,
              ttl=2 * H),
    ]


def default_pools(traffic: Fn = ONE) -> list[Pool]:
    return [Pool("db", 10, lambda c: 2 * traffic(c), lambda c: 20 * traffic(c)),
            Pool("llm_clients", 8, lambda c: 1.5 * traffic(c), lambda c: 2 * traffic(c))]


def default_sessions(traffic: Fn = ONE) -> list[Sessions]:
    """Support sessions (summarised), chat sessions, a LangGraph saver, task agents."""
    return [
        Sessions("conversation", "support", lambda c: 0.05 * traffic(c), 600, summarize_at=50),
        Sessions("conversation", "chat", lambda c: 0.1 * traffic(c), 300),
        Sessions("conversation", "graph_threads", lambda c: 0.05 * traffic(c), 900,
                 threads=True),
        Sessions("agent", "task_worker", lambda c: 0.3 * traffic(c), 120, limit_bytes=MiB),
    ]


def app(*, traffic: Fn = ONE, process: dict[str, object] | None = None,
        caches: list[Cache] | None = None, pools: list[Pool] | None = None,
        sessions: list[Sessions] | None = None, cleanups: list[Cleanup] | None = None
        ) -> list[Model]:
    """The standard app; any part can be replaced."""
    proc = {"rss": rss_of(traffic=traffic), "fds": lambda c: 50 + 25 * traffic(c),
            "traffic": traffic, **(process or {})}
    return [Process(**proc),  # type: ignore[arg-type]
            *(default_caches(traffic) if caches is None else caches),
            *(default_pools(traffic) if pools is None else pools),
            *(default_sessions(traffic) if sessions is None else sessions),
            *([Cleanup("trim_histories")] if cleanups is None else cleanups)]


def hist(hours: float, step: float = 30.0, **kw: object) -> History:
    return History(hours, step, **kw)  # type: ignore[arg-type]


def healthy() -> list[Scenario]:
    day = daily()
    busy_db = Pool("db", 10, const(2.0), const(20.0), burst=_bursts,
                   exhausted=_burst_timeouts)
    return [
        Scenario("gc-sawtooth", "GC sawtooth +-15 % around 72 % of the limit",
                 lambda: (hist(24), app(process={"rss": rss_of(level=2.55 * GiB)})),
                 SILENT, healthy=True),
        Scenario("warm-up", "fast warm-up after start (and after a deploy at 12h)",
                 lambda: (hist(24, 15, restarts_at=[12 * H]), app()), SILENT, healthy=True),
        Scenario("restarts", "a restart every 6 hours",
                 lambda: (hist(24, restarts_at=[6 * H, 12 * H, 18 * H]), app()), SILENT,
                 healthy=True),
        Scenario("cache-full", "100k-entry cache filled to capacity, 85 % hits",
                 lambda: (hist(24), app(caches=[Cache(
                     "llm_responses", 100_000, const(40.0),
                     lambda c, fill: 0.85 * min(1.0, 1.5 * fill), entry_bytes=1024)])),
                 SILENT, healthy=True),
        Scenario("pool-bursts", "bursty pool saturation (full for minutes, a few timeouts)",
                 lambda: (hist(24, 15), app(pools=[busy_db])), SILENT, healthy=True),
        Scenario("short-sessions", "many short sessions (2/s, 90 s each) and task agents",
                 lambda: (hist(24), app(sessions=[
                     Sessions("conversation", "chat", const(2.0), 90),
                     Sessions("conversation", "support", const(0.2), 600, summarize_at=50),
                     Sessions("agent", "task_worker", const(1.0), 60)])),
                 SILENT, healthy=True),
        Scenario("daily-cycle", "x3 daily traffic cycle, 2 days",
                 lambda: (hist(48), app(traffic=day)), SILENT, healthy=True),
        Scenario("held-connection", "a LISTEN connection held for the process lifetime",
                 lambda: (hist(24, restarts_at=[14 * H]), app(pools=[
                     Pool("db", 10, const(2.0), const(20.0), held_for_life=True)])),
                 SILENT, healthy=True),
        Scenario("physical", "no container limit (source=physical), flat memory",
                 lambda: (hist(24), app(process={"source": "physical",
                                                 "limit": 16 * GiB})), SILENT, healthy=True),
    ]


def _bursts(c: Ctx) -> float:
    """Every 25 minutes a 3-6 minute burst that wants 14 connections of 10."""
    k, phase = divmod(c.t, 1500)
    return 12.0 if phase < 180 + 60 * (k % 4) else 0.0


def _burst_timeouts(c: Ctx) -> float:
    k, phase = divmod(c.t, 1500)
    return 0.2 if k % 4 == 3 and phase < 120 else 0.0


def _leak(onset: float, per_hour: float) -> Fn:
    return lambda c: per_hour * leaked_since(c, onset) / H


def memory_leaks() -> list[Scenario]:
    fast = 1.0 * GiB
    return [
        Scenario("slow-leak", "slow RSS leak: +20 MiB/h from 40 % of a 1 GiB limit",
                 lambda: (hist(54), app(process={
                     "limit": 1 * GiB, "rss": rss_of(level=0.28 * GiB,
                                                     leak=_leak(24 * H, 20 * MiB))})),
                 (ticket(6 * H), page_before()), onset=24 * H),
        Scenario("fast-leak", "fast RSS leak: +1 GiB/h on a 4 GiB limit",
                 lambda: (hist(13, 15), app(process={"rss": rss_of(
                     leak=lambda c: fast * leaked_since(c, 8 * H) / H if c.life == 0 else 0)})),
                 (ticket(1 * H), page_before()), onset=8 * H),
        Scenario("fast-leak-deploy", "fast RSS leak shipped by a deploy (restart at 6h)",
                 lambda: (hist(12, restarts_at=[6 * H]), app(process={"rss": rss_of(
                     leak=lambda c: fast * c.uptime / H if c.life == 1 else 0)})),
                 (ticket(1 * H), page_before()), onset=6 * H),
        Scenario("oom-loop", "fast RSS leak in an OOM loop (every process)",
                 lambda: (hist(24, restarts_at=[2 * H]), app(process={"rss": rss_of(
                     level=1.3 * GiB,
                     leak=lambda c: fast * c.uptime / H if c.life >= 1 else 0)})),
                 (ticket(1 * H), page_before()), onset=2 * H),
        Scenario("spike", "spike to 95 % of the limit for 45 minutes",
                 lambda: (hist(12, 15), app(process={"rss": _spike(6 * H)})),
                 (page(15 * M),), onset=6 * H),
        Scenario("limit-unknown", "memory limit unreadable, fast leak from 6h",
                 lambda: (hist(12), app(process={
                     "limit": None, "oom_at": 4 * GiB, "host_total": 32 * GiB,
                     "rss": rss_of(leak=_leak(6 * H, fast))})),
                 (ticket(1 * H), page_before()), onset=0.0),
        Scenario("physical-budget", "no container limit, budget 3 GiB, fast leak",
                 lambda: (hist(12), app(process={
                     "source": "physical", "limit": 16 * GiB, "budget": 3 * GiB,
                     "rss": rss_of(level=1.2 * GiB, leak=_leak(6 * H, fast))})),
                 (ticket(1 * H), page_before("budget")), onset=6 * H),
        Scenario("physical-available", "no container limit, no budget, fast leak to host OOM",
                 lambda: (hist(17), app(process={
                     "source": "physical", "limit": 16 * GiB,
                     "rss": rss_of(level=1.2 * GiB, leak=_leak(4 * H, fast))})),
                 (ticket(1 * H), page_before()), onset=4 * H),
        Scenario("fd-leak", "fd leak: +60 descriptors/h of 1024",
                 lambda: (hist(42), app(process={
                     "fds": lambda c: 60 + 60 * leaked_since(c, 24 * H) / H})),
                 (ticket(6 * H), page_before("fds")), onset=24 * H),
        Scenario("crash-loop", "crash loop: every process dies 8 minutes after its start",
                 lambda: (hist(12), app(process={"crash_onset": 6 * H})),
                 (ticket(2 * H),), onset=6 * H),
    ]


def _spike(onset: float) -> Fn:
    base = rss_of()

    def f(c: Ctx) -> float:
        if onset <= c.t < onset + 45 * M:
            return 0.95 * 4 * GiB * (1 + 0.005 * math.sin(c.t / 60))
        return base(c)
    return f


def component_leaks() -> list[Scenario]:
    def thrash(size: int, lookups: float) -> Cache:
        return Cache("llm_responses", size, const(lookups),
                     lambda c, fill: (0.85 if c.t < 6 * H else 0.15) * min(1.0, 1.5 * fill),
                     entry_bytes=1024)

    def exhausted(c: Ctx) -> float:
        return 2.0 if c.t >= 6 * H else 0.0

    def history(per_hour: float) -> Sessions:
        return Sessions("conversation", "chat", const(0.1), 300, grow_onset=6 * H,
                        grow_per_hour=per_hour)

    day = daily()
    return [
        Scenario("unbounded-cache", "unbounded memo cache shipped at 4h (+3 entries/s)",
                 lambda: (hist(12), app(caches=[*default_caches(), Cache(
                     "request_memo", None, lambda c: 3.0 if c.t >= 4 * H else 0.0,
                     lambda c, fill: 0.0, entry_bytes=2048)])),
                 (ticket(6 * H),), onset=4 * H),
        Scenario("thrashing-small", "thrashing: 1k-entry cache drops to 15 % hits",
                 lambda: (hist(12), app(caches=[thrash(1000, 20.0)])), (ticket(1 * H),),
                 onset=6 * H),
        Scenario("thrashing-large", "thrashing: 100k-entry cache drops to 15 % hits",
                 lambda: (hist(12), app(caches=[thrash(100_000, 50.0)])), (ticket(1 * H),),
                 onset=6 * H),
        Scenario("pool-exhausted", "pool exhausted: acquires time out from 6h",
                 lambda: (hist(12, 15), app(pools=[Pool(
                     "db", 10, lambda c: 12.0 if c.t >= 6 * H else 2.0, const(20.0),
                     exhausted=exhausted)])), (page(30 * M),), onset=6 * H),
        Scenario("pool-leak", "pool leak: a connection never returned every 20 minutes",
                 lambda: (hist(12), app(pools=[Pool("db", 20, const(2.0), const(20.0),
                                                    leak_onset=4 * H)])),
                 (ticket(2 * H),), onset=4 * H),
        Scenario("history-40", "unbounded history: one session +40 messages/h",
                 lambda: (hist(12), app(sessions=[history(40), *default_sessions()[:1]])),
                 (ticket(6 * H),), onset=6 * H),
        Scenario("history-10", "unbounded history: one session +10 messages/h",
                 lambda: (hist(12), app(sessions=[history(10), *default_sessions()[:1]])),
                 (ticket(6 * H),), onset=6 * H),
        Scenario("sessions-leak", "5 % of chat sessions and graph threads never freed, "
                                  "x3 daily churn",
                 lambda: (hist(24), app(traffic=day, sessions=[
                     Sessions("conversation", "chat", lambda c: 0.5 * day(c), 300, leak=0.05,
                              leak_onset=6 * H),
                     Sessions("conversation", "graph_threads", lambda c: 0.1 * day(c), 900,
                              threads=True, leak=0.05, leak_onset=6 * H)])),
                 (ticket(6 * H), Expect("steady")), onset=6 * H),
        Scenario("agents-leak", "5 % of task agents kept alive, x3 daily churn",
                 lambda: (hist(24), app(traffic=day, sessions=[
                     Sessions("agent", "task_worker", lambda c: 0.3 * day(c), 120, leak=0.05,
                              leak_onset=6 * H)])),
                 (ticket(6 * H), Expect("steady")), onset=6 * H),
        Scenario("cleanup-failing", "cleanup job fails every run from 6h",
                 lambda: (hist(12), app(cleanups=[Cleanup("trim_histories",
                                                          fail_onset=6 * H)])),
                 (ticket(1 * H),), onset=6 * H),
        Scenario("cleanup-stale", "cleanup job stops running at 6h",
                 lambda: (hist(12), app(cleanups=[Cleanup("trim_histories",
                                                          stop_onset=6 * H)])),
                 (ticket(1 * H),), onset=6 * H),
    ]


def scenarios() -> list[Scenario]:
    return [*healthy(), *memory_leaks(), *component_leaks()]
