"""Proxies: one class per kind, name and shape variant, per-object state in slots.

A proxy behaves as the object it wraps (``wrapt.ObjectProxy``: ``isinstance`` holds, every
attribute and operator reaches the object, results and exceptions are the object's); it
prints, copies and pickles as the wrapped object (the counters belong to this process, so a
copy is a plain, uninstrumented object). Its hot methods live on its class, made once per
name and variant with the name's counters bound in, so a proxy costs one small object: no
class, closure or finalizer per proxy, nothing to release when it dies.

wrapt is imported on first use, not with memexport.
"""

from __future__ import annotations

import copy
from typing import Any

from memexport.core import forks
from memexport.core.importing import AdapterLoading, importing

__all__ = ["proxy_base"]

_bases: dict[tuple[str, tuple[str, ...]], type] = {}
_lock = forks.RLock()


async def _aenter(self: Any) -> Any:
    wrapped = self.__wrapped__
    result = await wrapped.__aenter__()
    return self if result is wrapped else result


async def _aexit(self: Any, *exc: Any) -> Any:
    return await self.__wrapped__.__aexit__(*exc)


def _enter(self: Any) -> Any:
    wrapped = self.__wrapped__
    result = wrapped.__enter__()
    return self if result is wrapped else result


def _exit(self: Any, *exc: Any) -> Any:
    return self.__wrapped__.__exit__(*exc)


#: ``with proxy:`` gives the proxy back (not the bare object), so work done inside counts.
CONTEXT = {"__enter__": _enter, "__exit__": _exit, "__aenter__": _aenter, "__aexit__": _aexit}


def _make_base(slots: tuple[str, ...]) -> type:
    with importing():
        import wrapt

    if not hasattr(wrapt, "ObjectProxy"):  # this thread is importing it: a signal handler
        raise AdapterLoading("memexport is importing wrapt in this thread (a signal handler "
                             "instrumenting during the first proxy?): instrument outside the "
                             "handler, or once before installing it")

    class Proxy(wrapt.ObjectProxy):  # type: ignore[type-arg]
        """A ``wrapt.ObjectProxy`` that reprs, copies, pickles and lists as the wrapped object."""

        __slots__ = ("_self_component", *slots)

        # Plain attribute lookup for the proxy's own methods and slots (wrapt's forwarding
        # ``__getattr__`` still finds what the proxy lacks on the wrapped object).
        __getattribute__ = object.__getattribute__

        def __repr__(self) -> str:
            return repr(self.__wrapped__)

        def __str__(self) -> str:
            return str(self.__wrapped__)

        def __reduce_ex__(self, protocol: Any) -> Any:
            return self.__wrapped__.__reduce_ex__(protocol)

        def __reduce__(self) -> Any:
            return self.__wrapped__.__reduce__()

        def __copy__(self) -> Any:
            return copy.copy(self.__wrapped__)

        def __deepcopy__(self, memo: dict[int, Any]) -> Any:
            return copy.deepcopy(self.__wrapped__, memo)

        def __dir__(self) -> list[str]:
            return dir(self.__wrapped__)

    return Proxy


def proxy_base(kind: str, slots: tuple[str, ...] = (), context: bool = False) -> type:
    """The proxy base class of ``kind`` with per-object state ``slots`` (made once);
    ``context``: ``with proxy`` returns the proxy where the object would return itself."""
    key = (kind, slots)
    base = _bases.get(key)
    if base is None:
        with _lock:
            base = _bases.get(key)
            if base is None:
                base = _make_base(slots)
                if context:
                    base = type(base.__name__, (base,), {"__slots__": (), **CONTEXT})
                base.__qualname__ = base.__name__ = f"{kind.title()}Proxy"
                # What an uninstrumented proxy goes back to.
                setattr(base, "__memexport_base__", True)  # noqa: B010
                _bases[key] = base
    return base
