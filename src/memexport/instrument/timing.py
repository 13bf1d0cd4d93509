"""Timed acquires and releases, generated from one template for every pool shape.

The bookkeeping around an acquire is written once (``_TIMED``): count the acquire started,
read the clock, get the resource (``{acquire}``: a ``with`` enter, a generator step, a call,
an await), count a failure as exhausted or as an error, record the wait, hold the resource
(by acquire time, or by ``id`` when it comes back by value), and fold the buffered durations
every ``FOLD_AT`` acquires. A release (``_RELEASE``) ends the hold and records the use time.
``acquire_classes`` and ``call_functions`` fill it for each way a pool hands out resources;
the pool kind and its adapters (redis, SQLAlchemy) call them, nobody copies the body.

Everything named ``_x`` in a template is bound per pool name: ``_started``, ``_failed``,
``_wait_add``, ``_use_add``, ``_fold`` come from the name's handles. ``held`` is the pool's
own dict of resources out: ``acquire time -> acquire time`` for a ``with``, ``id(resource)
-> acquire time`` for a resource returned by value.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Mapping
from typing import Any

from memexport.core.counters import FOLD_MASK
from memexport.instrument.templates import compile_functions

__all__ = ["acquire_classes", "call_functions", "contextlib_exit", "generator_of",
           "handle_names"]

_TIMED = '''n = _started()
    t0 = _clock()
    try:
        resource = {acquire}
    except BaseException as exc:
        _failed(exc, {cancelled})
        raise
    t = _clock()
    _wait_add(t - t0)
    {hold}
    if not n & _MASK:
        _fold()'''
_RELEASE = '''start = held.pop({key}, None)
    if start is not None:
        _use_add(_clock() - start)'''


def _timed(acquire: str, hold: str, cancelled: bool = False, indent: int = 0) -> str:
    body = _TIMED.format(acquire=acquire, hold=hold, cancelled=cancelled)
    return body.replace("\n", "\n" + " " * indent)


def _release(key: str, indent: int = 0) -> str:
    return _RELEASE.format(key=key).replace("\n", "\n" + " " * indent)


def handle_names(handles: Any, failed: Callable[..., None]) -> dict[str, Any]:
    """The per-name globals of the generated functions."""
    return {"_started": handles.started, "_failed": failed, "_wait_add": handles.wait,
            "_wait_zero": handles.wait_zero,
            "_use_add": handles.use, "_fold": handles.fold, "_clock": time.perf_counter,
            "_MASK": FOLD_MASK}


# -- context managers: ``with pool.acquire() as r`` -------------------------------------------

_ACQUIRE = '''
class Acquire:
    """Wraps what the pool's ``acquire()`` returned: ``with``, ``async with`` or ``await``."""

    __slots__ = ("_cm", "_held", "_t")

    def __enter__(self):
        cm = self._cm
        enter = getattr(cm, "__enter__", None)
        if enter is None:
            raise TypeError(_NOT_WITH.format(type(cm).__qualname__))
        held = self._held
        {timed_enter}
        self._t = t
        return resource

    def __exit__(self, typ, value, tb):
        t = _clock()
        start = self._t
        self._held.pop(start, None)
        _use_add(t - start)
        return self._cm.__exit__(typ, value, tb)

    async def __aenter__(self):
        cm = self._cm
        enter = getattr(cm, "__aenter__", None)
        if enter is None:
            raise TypeError(_NOT_ASYNC_WITH.format(type(cm).__qualname__))
        held = self._held
        {timed_aenter}
        self._t = t
        return resource

    async def __aexit__(self, typ, value, tb):
        t = _clock()
        start = self._t
        self._held.pop(start, None)
        _use_add(t - start)
        return await self._cm.__aexit__(typ, value, tb)

    def __await__(self):
        return self._awaited().__await__()

    async def _awaited(self):
        # ``r = await pool.acquire()`` then ``pool.release(r)`` (asyncpg style).
        held = self._held
        {timed_await}
        return resource


class GeneratorAcquire:
    """Drives a ``@contextmanager`` acquire's generator, exactly as contextlib would."""

    __slots__ = ("_gen", "_held", "_t")

    def __enter__(self):
        held = self._held
        gen = self._gen
        {timed_next}
        self._t = t
        return resource

    def __exit__(self, typ, value, tb):
        t = _clock()
        start = self._t
        self._held.pop(start, None)
        _use_add(t - start)
        if typ is None:
            gen = self._gen
            try:
                next(gen)
            except StopIteration:
                return False
            try:
                raise RuntimeError("generator didn't stop")
            finally:
                gen.close()
        return _contextlib_exit(self._gen, typ, value, tb)


class AsyncGeneratorAcquire:
    """Drives an ``@asynccontextmanager`` acquire's generator, as contextlib would."""

    __slots__ = ("_gen", "_held", "_t")

    async def __aenter__(self):
        held = self._held
        gen = self._gen
        {timed_anext}
        self._t = t
        return resource

    async def __aexit__(self, typ, value, tb):
        t = _clock()
        start = self._t
        self._held.pop(start, None)
        _use_add(t - start)
        if typ is None:
            gen = self._gen
            try:
                await gen.__anext__()
            except StopAsyncIteration:
                return False
            try:
                raise RuntimeError("generator didn't stop")
            finally:
                await gen.aclose()
        return await _contextlib_aexit(self._gen, typ, value, tb)
'''

_NOT_WITH = ("acquire() returned a {}, which does not support 'with' (use 'async with', or "
             "pass mode='call' and release= to memexport.pool if it is the resource itself)")
_NOT_ASYNC_WITH = "acquire() returned a {}, which does not support 'async with' (use 'with')"

_GCM: Any = getattr(contextlib, "_GeneratorContextManager", None)
_AGCM: Any = getattr(contextlib, "_AsyncGeneratorContextManager", None)


def contextlib_exit(gen: Any, typ: Any, value: Any, tb: Any) -> Any:
    """``__exit__`` with an exception, exactly as contextlib's own would run it."""
    cm = _GCM.__new__(_GCM)
    cm.gen = gen
    return cm.__exit__(typ, value, tb)


async def _contextlib_aexit(gen: Any, typ: Any, value: Any, tb: Any) -> Any:
    cm = _AGCM.__new__(_AGCM)
    cm.gen = gen
    return await cm.__aexit__(typ, value, tb)


def _probe() -> Any:
    yield


async def _async_probe() -> Any:
    yield


# Every @contextmanager / @asynccontextmanager function shares its helper's code object.
_CM_CODE = getattr(contextlib.contextmanager(_probe), "__code__", None)
_ACM_CODE = getattr(contextlib.asynccontextmanager(_async_probe), "__code__", None)


def generator_of(method: Any) -> tuple[Callable[..., Any] | None, bool]:
    """(generator function, is async) behind a ``@contextlib.contextmanager`` or
    ``@contextlib.asynccontextmanager`` method; (None, False) for anything else."""
    import inspect

    func = getattr(method, "__func__", method)
    code = getattr(func, "__code__", None)
    gen = getattr(func, "__wrapped__", None)
    if code is None or gen is None:
        return None, False
    if _GCM is not None and code is _CM_CODE and inspect.isgeneratorfunction(gen):
        return gen, False
    if _AGCM is not None and code is _ACM_CODE and inspect.isasyncgenfunction(gen):
        return gen, True
    return None, False


def acquire_classes(names: Mapping[str, Any]) -> dict[str, type]:
    """The ``Acquire``, ``GeneratorAcquire`` and ``AsyncGeneratorAcquire`` classes of one
    pool name (``names``: its ``handle_names``)."""
    hold = "held[t] = t"
    source = _ACQUIRE.format(
        timed_enter=_timed("enter()", hold, indent=4),
        timed_aenter=_timed("await enter()", hold, True, indent=4),
        timed_await=_timed("await self._cm", "held[id(resource)] = t", True, indent=4),
        timed_next=_timed("_next(gen)", hold, indent=4),
        timed_anext=_timed("await _anext(gen)", hold, True, indent=4),
    )
    scope = {**names, "_NOT_WITH": _NOT_WITH, "_NOT_ASYNC_WITH": _NOT_ASYNC_WITH,
             "_contextlib_exit": contextlib_exit, "_contextlib_aexit": _contextlib_aexit,
             "_next": _next, "_anext": _anext}
    return {k: v for k, v in compile_functions(source, scope,
                                               filename="<memexport pool acquire>").items()
            if isinstance(v, type)}


def _next(gen: Any) -> Any:
    try:
        return next(gen)
    except StopIteration:
        raise RuntimeError("generator didn't yield") from None


async def _anext(gen: Any) -> Any:
    try:
        return await gen.__anext__()
    except StopAsyncIteration:
        raise RuntimeError("generator didn't yield") from None


# -- by value: ``r = pool.acquire()`` ... ``pool.release(r)`` --------------------------------

_CALL = '''
def {acquire_name}(self, {params}):
    held = {held}
    if held is None:
        return _acquire({target}, {args})
    {timed}
    return resource

def {release_name}(self, resource, *args, **kwargs):
    held = {held}
    if held is not None:
        {release}
    return _release({target}, resource, *args, **kwargs)
'''


def call_functions(names: Mapping[str, Any], acquire: Callable[..., Any],
                   release: Callable[..., Any], *, acquire_name: str = "acquire",
                   release_name: str = "release", is_async: bool = False,
                   target: str = "self.__wrapped__", held: str = "self._self_held",
                   params: str = "*args, **kwargs", args: str | None = None
                   ) -> dict[str, Any]:
    """Timed ``acquire``/``release`` functions for a pool handing out resources by value.

    ``target`` reaches the pool (a proxy's wrapped pool, or ``self``); ``held`` is the
    pool's dict of resources out, or None for a pool not tracked (called through untimed).
    ``acquire``/``release`` are the pool's own, called as ``fn(pool, ...)``; ``params`` are
    the acquire's parameters, ``args`` how they are passed on (``params`` by default).
    """
    args = params if args is None else args
    call = f"{'await ' if is_async else ''}_acquire({target}, {args})"
    source = _CALL.format(
        acquire_name=acquire_name, release_name=release_name, params=params,
        args=args, target=target, held=held,
        timed=_timed(call, "held[id(resource)] = t", is_async),
        release=_release("id(resource)", indent=4))
    if is_async:
        source = source.replace(f"def {acquire_name}", f"async def {acquire_name}", 1)
        source = source.replace(f"return _acquire({target}", f"return await _acquire({target}",
                                1)
    scope = {**names, "_acquire": acquire, "_release": release}
    return compile_functions(source, scope, filename="<memexport pool call>")
