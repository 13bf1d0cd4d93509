"""Issue 11 item 6: user data never reaches ``/metrics``, OTLP payloads, log lines or
memexport's exception texts.

Before, the WARNING log quoted the messages of failing sizers, ``__len__`` and readers
(``sizer failed (ValueError: cannot size 'card 4111-...')``), the setup ``TypeError`` quoted
the object's repr, and a 100,000-character bad name was echoed whole. A canary string is put
everywhere user data can be (keys, values, messages, reprs, exception messages, attribute
values, bad arguments); the real logging output (every logger, DEBUG and up, tracebacks
included), the Prometheus exposition, the OTLP protobuf payload and every exception text
memexport raises are searched for it.
"""

from __future__ import annotations

import collections
import functools
import io
import logging
import queue
from collections.abc import Iterator
from typing import Any

import cachetools
import pytest

import memexport
from tests.adversarial.support import (
    CANARY,
    Agent,
    ConversationManager,
    GetPutCache,
    GuidePool,
    Registry,
    Store,
    UserMapping,
    counter_total,
    prometheus_text,
)


@pytest.fixture
def log_output() -> Iterator[io.StringIO]:
    """Everything any logger prints while the test runs, formatted with tracebacks."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
    handler.setLevel(logging.DEBUG)
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield out
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)


class Leaky(Exception):
    pass


def leaky(*_args: Any) -> Any:
    raise Leaky(f"cannot size card {CANARY}")


class SecretLen(UserMapping):
    def __len__(self) -> int:
        raise ValueError(f"len of {CANARY}")


class SecretRepr(UserMapping):
    def __repr__(self) -> str:
        return f"SecretRepr({CANARY})"


def populate(reg: Registry) -> list[Any]:
    """Objects of every kind holding the canary, with failing user code quoting it."""
    keep: list[Any] = []
    secret = {"role": "user", "content": CANARY, CANARY: CANARY}
    d = memexport.cache({CANARY: secret}, name="sessions", sizer=leaky, registry=reg)
    d[CANARY + "2"] = secret
    d.get(CANARY)
    keep.append(d)
    ct: Any = memexport.cache(cachetools.LRUCache(8), name="ct", registry=reg,
                         items=leaky, max_bytes=leaky)
    ct[CANARY] = secret
    keep.append(ct)
    keep.append(memexport.cache(SecretLen({CANARY: 1}), name="badlen", registry=reg))
    keep.append(memexport.cache(SecretRepr({CANARY: 1}), name="repr", registry=reg,
                                bytes=leaky))
    gp = memexport.cache(GetPutCache(), name="getput", registry=reg)
    gp.put(CANARY, secret)
    keep.append(gp)
    f = memexport.cache(functools.lru_cache(maxsize=4)(lambda x: {"v": x}), name="lru",
                        registry=reg)
    f(CANARY)
    keep.append(f)
    h: Any = memexport.conversation(collections.deque(maxlen=2), name="chat", registry=reg)
    h.extend([secret, secret, secret])
    keep.append(h)
    m = memexport.conversation(ConversationManager(), name="manager", registry=reg,
                               summaries=leaky)
    m.add_message(secret)
    keep.append(m)
    a = memexport.agent(Agent(CANARY), name="agent", registry=reg, weak_refs=leaky)
    a.store_memory(CANARY, secret)
    keep.append(a)
    q: Any = memexport.pool(queue.Queue(), name="q", registry=reg, max_size=leaky)
    q.put(Store())
    keep.append(q)
    p = memexport.pool(GuidePool(factory=Store), name="pool", registry=reg, idle=leaky)
    with p.acquire():
        pass
    keep.append(p)

    def failing_cleanup() -> None:
        raise Leaky(f"cleanup of {CANARY} failed")

    c = memexport.cleanup(failing_cleanup, name="cleanup", registry=reg)
    with pytest.raises(Leaky):
        c()
    keep.append(c)
    return keep


def test_no_canary_in_metrics_otlp_or_logs(log_output: io.StringIO) -> None:
    from opentelemetry.exporter.otlp.proto.common.metrics_encoder import encode_metrics
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    reg = Registry()
    keep = populate(reg)
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    memexport.use_opentelemetry(provider, registry=reg, collector=False)
    for _ in range(2):
        reg.run_tick_jobs(0.05)
        text = prometheus_text(reg)
        assert CANARY not in text
        data = reader.get_metrics_data()
        assert data is not None
        assert CANARY not in data.to_json()
        assert CANARY.encode() not in encode_metrics(data).SerializeToString()
    assert counter_total(reg, "cache") >= 3  # the failures happened, and were counted
    logged = log_output.getvalue()
    assert "memexport" in logged and "Leaky" in logged  # logged, by type
    assert CANARY not in logged
    provider.shutdown()
    assert len(keep) == 12


def _errors_of(calls: list[Any]) -> list[str]:
    texts = []
    for call in calls:
        try:
            call()
        except (TypeError, ValueError) as exc:
            texts.append(f"{type(exc).__name__}: {exc}")
        else:
            raise AssertionError(f"accepted: {call}")
    return texts


def test_no_canary_in_memexport_exception_texts(log_output: io.StringIO) -> None:
    reg = Registry()
    long_name = "x" * 100_000 + CANARY

    class Unreadable:
        def __getattr__(self, name: str) -> Any:
            raise RuntimeError(CANARY)

    class Secret:
        def __init__(self) -> None:
            self.msgs = CANARY  # not a list: no history found

        def __repr__(self) -> str:
            return CANARY

    # Objects and what they hold: never shown, not even cut (only their type is named).
    texts = _errors_of([
        lambda: memexport.cache(Store(), name="store", registry=reg),
        lambda: memexport.cache(Unreadable(), name="u", registry=reg),
        lambda: memexport.pool(Store(), name="store", registry=reg),
        lambda: memexport.conversation(Secret(), name="secret", registry=reg),
        lambda: memexport.agent({CANARY: 1}, name="dict", registry=reg),
        lambda: memexport.cache({}, name=Store(), registry=reg),  # type: ignore[call-overload]
        lambda: memexport.cache({}, name="ok", registry=reg, items=Store()),
        lambda: memexport.cache({}, name="ok", registry=reg,
                                lookups=[Store()]),  # type: ignore[list-item]
        lambda: memexport.pool(queue.Queue(), name="ok", registry=reg, exhausted=[Store()]),
        lambda: memexport.agent(Agent(), name="a", registry=reg, memory=lambda o: leaky()),
        lambda: memexport.budget(Store(), registry=reg),  # type: ignore[arg-type]
    ])
    for text in texts:
        assert CANARY not in text, text
    assert sum("Store" in t for t in texts) >= 5  # types are named
    # Strings the developer passed (names, method names, modes): shown, cut at 60
    # characters, so the tail of a long one never is.
    cut = _errors_of([
        lambda: memexport.cache({}, name=long_name, registry=reg),
        lambda: memexport.cache({}, name=long_name[:-1] + "!", registry=reg),
        lambda: memexport.cache({}, name="ok", registry=reg, sizer=long_name),
        lambda: memexport.cache({}, name="ok", registry=reg, items=long_name + " x"),
        lambda: memexport.pool(queue.Queue(), name="ok", registry=reg, mode=long_name),
        lambda: memexport.pool(GuidePool(), name="ok", registry=reg, acquire=long_name + "-"),
        lambda: memexport.conversation(collections.deque(), name="ok", registry=reg,
                                       history=long_name + " ."),
        lambda: memexport.budget(1e6, kind="cache", name=long_name, registry=reg),
        lambda: memexport.budget(1e6, kind=long_name, name="x", registry=reg),
        lambda: memexport.cleanup(lambda: None, name=long_name, registry=reg),
    ])
    for text in cut:
        assert CANARY not in text and len(text) < 600, text[:300]
    assert CANARY not in log_output.getvalue()
