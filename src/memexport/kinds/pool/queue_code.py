"""A tracked queue's ``get``/``put``: the standard library's own code with the bookkeeping in it.

Wrapping ``Queue.get``/``put`` leaves the queue's work as it is and adds the bookkeeping
around it; the bookkeeping (a count, one or two clock reads, a hold keyed by ``id``) is most
of a pool's budget, so nothing else may be added. Here ``get``/``put`` are the bodies of
``queue.Queue.get``/``put`` as this Python ships them, compiled once per pool name with the
bookkeeping in the same frame. The clock read that starts the wait doubles as the one
``get(timeout=...)`` reads for its deadline when both clocks are one. A get that finds an
item without waiting reads no second clock: its wait is 0, counted without a value kept
(``Histogram.zero``), and its hold starts at that one read (the mutex is held for
microseconds at most). The copy is used only when it is the running interpreter's: each
body is compiled plain first and its bytecode compared with ``queue.Queue.get``/``put``'s
(3.10-3.12 share one body, 3.13 adds ``shutdown``). A Python whose queue differs, or a
subclass overriding ``get``/``put``, gets ``None`` here and keeps the wrapper in
``memexport.kinds.pool.queues``.

The release's bookkeeping (``held.pop``) runs under the queue's mutex, right after the item
is back: a thread getting it a moment later cannot have its hold popped by this ``put``.
"""

from __future__ import annotations

import queue
import textwrap
import time
from collections.abc import Callable, Mapping
from types import CodeType
from typing import Any

from memexport.core.counters import FOLD_MASK
from memexport.instrument.templates import compile_functions

__all__ = ["inline_methods", "stdlib_bodies"]

# The ``with`` blocks of CPython's ``Queue.get``/``put`` (Lib/queue.py, PSF licence), with
# four marks: ``{now}`` the deadline's clock read, ``{wait}`` the first line of a loop that
# waits for an item, ``{got}`` the get's ``return item`` and ``{put_done}`` the line after
# the put's ``self._put(item)``.
_GET_310 = '''
with self.not_empty:
    if not block:
        if not self._qsize():
            raise Empty
    elif timeout is None:
        while not self._qsize():
            {wait}
            self.not_empty.wait()
    elif timeout < 0:
        raise ValueError("'timeout' must be a non-negative number")
    else:
        endtime = {now} + timeout
        while not self._qsize():
            {wait}
            remaining = endtime - time()
            if remaining <= 0.0:
                raise Empty
            self.not_empty.wait(remaining)
    item = self._get()
    self.not_full.notify()
    {got}
'''

_PUT_310 = '''
with self.not_full:
    if self.maxsize > 0:
        if not block:
            if self._qsize() >= self.maxsize:
                raise Full
        elif timeout is None:
            while self._qsize() >= self.maxsize:
                self.not_full.wait()
        elif timeout < 0:
            raise ValueError("'timeout' must be a non-negative number")
        else:
            endtime = time() + timeout
            while self._qsize() >= self.maxsize:
                remaining = endtime - time()
                if remaining <= 0.0:
                    raise Full
                self.not_full.wait(remaining)
    self._put(item)
    {put_done}
    self.unfinished_tasks += 1
    self.not_empty.notify()
'''

_GET_313 = '''
with self.not_empty:
    if self.is_shutdown and not self._qsize():
        raise ShutDown
    if not block:
        if not self._qsize():
            raise Empty
    elif timeout is None:
        while not self._qsize():
            {wait}
            self.not_empty.wait()
            if self.is_shutdown and not self._qsize():
                raise ShutDown
    elif timeout < 0:
        raise ValueError("'timeout' must be a non-negative number")
    else:
        endtime = {now} + timeout
        while not self._qsize():
            {wait}
            remaining = endtime - time()
            if remaining <= 0.0:
                raise Empty
            self.not_empty.wait(remaining)
            if self.is_shutdown and not self._qsize():
                raise ShutDown
    item = self._get()
    self.not_full.notify()
    {got}
'''

_PUT_313 = '''
with self.not_full:
    if self.is_shutdown:
        raise ShutDown
    if self.maxsize > 0:
        if not block:
            if self._qsize() >= self.maxsize:
                raise Full
        elif timeout is None:
            while self._qsize() >= self.maxsize:
                self.not_full.wait()
                if self.is_shutdown:
                    raise ShutDown
        elif timeout < 0:
            raise ValueError("'timeout' must be a non-negative number")
        else:
            endtime = time() + timeout
            while self._qsize() >= self.maxsize:
                remaining = endtime - time()
                if remaining <= 0.0:
                    raise Full
                self.not_full.wait(remaining)
                if self.is_shutdown:
                    raise ShutDown
    self._put(item)
    {put_done}
    self.unfinished_tasks += 1
    self.not_empty.notify()
'''

_GET_HEAD = "def get(self, block=True, timeout=None):\n"
_PUT_HEAD = "def put(self, item, block=True, timeout=None):\n"

# The bookkeeping: ``_x`` names are the pool name's handles (``timing.handle_names``).
_GET = _GET_HEAD + '''    n = _next(_starts)
    t0 = _clock()
    waited = False
    try:
{body}
    except BaseException as exc:
        _failed(exc, False)
        raise
    if waited:
        t = _clock()
        _wait_add(t - t0)
    else:
        t = t0
        _wait_zero()
    self._me_held[id(item)] = t
    if not n & {mask}:
        _fold()
    return item
'''
_PUT = _PUT_HEAD + '''{body}
    if start is None:
        _created()
    else:
        _use_add(_clock() - start)
'''
_PUT_DONE = "start = self._me_held.pop(id(item), None)"


def _same(code: CodeType, ref: CodeType) -> bool:
    """Whether two functions' code is the same (the docstring, first constant, aside)."""
    return (code.co_code == ref.co_code and code.co_names == ref.co_names
            and code.co_varnames == ref.co_varnames and code.co_consts[1:] == ref.co_consts[1:]
            and getattr(code, "co_exceptiontable", None) == getattr(ref, "co_exceptiontable", None)
            and code.co_argcount == ref.co_argcount and code.co_flags == ref.co_flags)


def _compiled(source: str) -> CodeType:
    for const in compile(source, "<memexport queue>", "exec", dont_inherit=True).co_consts:
        if isinstance(const, CodeType):
            return const
    raise AssertionError("no function in the source")  # pragma: no cover


def _plain(head: str, body: str) -> str:
    filled = body.format(now="time()", got="return item", put_done="", wait="")
    return head + '    """The docstring, first constant as in the stdlib."""' + textwrap.indent(
        filled, "    ")


def _matching(bodies: tuple[str, ...], head: str, fn: Callable[..., Any]) -> str | None:
    code = getattr(fn, "__code__", None)
    if code is None or getattr(fn, "__defaults__", None) != (True, None):
        return None
    for body in bodies:
        if _same(_compiled(_plain(head, body)), code):
            return body
    return None


_found: list[tuple[str | None, str | None]] = []


def stdlib_bodies() -> tuple[str | None, str | None]:
    """The ``with`` blocks of this Python's ``Queue.get`` and ``Queue.put`` among the copies
    (None for one that matches none), worked out once. Both are stored in one step: a
    signal handler instrumenting a queue mid-way finds both or neither."""
    if not _found:
        found = (_matching((_GET_310, _GET_313), _GET_HEAD, queue.Queue.get),
                 _matching((_PUT_310, _PUT_313), _PUT_HEAD, queue.Queue.put))
        _found.append(found)
    return _found[0]


def _one_clock() -> bool:
    """Whether ``queue``'s deadline clock and the pool clock (``perf_counter``) are one."""
    info = time.get_clock_info
    return bool(getattr(queue, "time", None) is time.monotonic
                and info("monotonic").implementation == info("perf_counter").implementation)


def inline_methods(names: Mapping[str, Any], cls: type) -> dict[str, Any]:
    """``get``/``put`` for a tracked queue of class ``cls`` (``names``: the pool name's
    handles, ``_created`` included), those of them that can be the stdlib's own code: a
    ``cls`` overriding one, or a Python whose queue is not among the copies, leaves it out.
    The tracked queue keeps its ``held`` dict as ``_me_held``."""
    get_body, put_body = stdlib_bodies()
    scope = {**names, "time": queue.__dict__.get("time"), "Empty": queue.Empty,
             "Full": queue.Full, "ShutDown": getattr(queue, "ShutDown", None)}
    out: dict[str, Any] = {}
    if get_body is not None and getattr(cls, "get", None) is queue.Queue.get:
        body = get_body.format(now="t0" if _one_clock() else "time()", got="",
                               wait="waited = True")
        # ``next(count)`` is a cheaper call than the count's bound ``__next__``.
        scope.update(_next=next, _starts=names["_started"].__self__)
        out.update(compile_functions(_GET, scope, filename="<memexport queue get>",
                                     body=textwrap.indent(body.strip("\n"), " " * 8),
                                     mask=str(FOLD_MASK)))
    if put_body is not None and getattr(cls, "put", None) is queue.Queue.put:
        body = put_body.format(put_done=_PUT_DONE)
        out.update(compile_functions(_PUT, scope, filename="<memexport queue put>",
                                     body=textwrap.indent(body.strip("\n"), " " * 4)))
    return out
