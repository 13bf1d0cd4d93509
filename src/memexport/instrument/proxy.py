"""The base of memexport's proxies: behave as the wrapped object where wrapt does not.

A proxy prints, copies and pickles as the object it wraps: the counters belong to this
process, so a copy or an unpickled object is a plain, uninstrumented one (instrument it
again to count it).
"""

from __future__ import annotations

import copy
from typing import Any

import wrapt

__all__ = ["Proxy"]


class Proxy(wrapt.ObjectProxy):  # type: ignore[misc]
    """A ``wrapt.ObjectProxy`` that reprs, copies, pickles and lists as the wrapped object."""

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
