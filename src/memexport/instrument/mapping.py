"""Counted mapping methods, from one template: hits, misses, puts and removals.

Used by every cache shaped as a mapping: tracked dicts (the builtin's methods called with
``self``), proxies of other mappings (``self.__wrapped__``), decorated mapping classes (their
original methods called with ``self``) and cachetools caches. ``mapping_methods`` fills the
template for one access style and returns the functions to put on the name's class.

A miss is the ``KeyError`` (re-raised unchanged) or ``get`` returning its default; for a
mapping with ``__missing__`` (defaultdict, cachetools subclasses) a key not present. ``in``
is not a request. Removals by the app (``del``, ``pop``, ``popitem``, ``clear``) are
explicit evictions; with per-entry sizes their bytes are exact.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

from memexport.instrument.templates import compile_functions

__all__ = ["MISSING", "PROXY", "SELF", "as_size", "mapping_methods", "originals_of"]

MISSING: Any = object()


def as_size(value: Any) -> float:
    """A sizer's result as bytes: a finite, non-negative int or float, else an error naming
    its type (never the value: it is the user's)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"a sizer returned a {type(value).__qualname__[:60]}, not a number")
    size = float(value)
    if not (0.0 <= size < math.inf):
        raise ValueError("a sizer returned a negative or non-finite number")
    return size


def _access(m: str, prefix: str) -> dict[str, str]:
    return {
        "m": m, "getitem": f"_getitem({m}, key)", "get": f"_get({m}, key, _MISSING)",
        "setitem": f"_setitem({m}, key, value)", "delitem": f"_delitem({m}, key)",
        "pop": f"_pop({m}, key, _MISSING)", "popitem": f"_popitem({m}, *args, **kwargs)",
        "clear": f"_clear({m})", "contains": f"_contains({m}, key)", "length": f"_len({m})",
        "items": f"list(_items({m}))", "sizes": f"self.{prefix}_sizes",
        "total": f"self.{prefix}_total",
    }


#: Access through the original methods, called with ``self`` (tracked builtins, patched
#: classes): the originals are ``_getitem``, ``_get``... in the functions' globals.
SELF = _access("self", "_me")
#: Access through a proxy's wrapped mapping: the originals are its type's methods, called
#: with ``self.__wrapped__`` (no special-method dispatch on the way).
PROXY = _access("self.__wrapped__", "_self")

_LOOKUPS = '''
def __getitem__(self, key):
    try:
        value = {getitem}
    except KeyError:
        _miss()
        raise
    _hit()
    return value

def get(self, key, default=None):
    value = {get}
    if value is _MISSING:
        _miss()
        return default
    _hit()
    return value
'''
_LOOKUPS_MISSING = '''
def __getitem__(self, key):
    try:
        present = {contains}
    except Exception:  # the mapping's own __contains__ failed: count nothing
        return {getitem}
    if present:
        _hit()
    else:
        _miss()
    return {getitem}

def get(self, key, default=None):
    value = {get}
    if value is _MISSING:
        _miss()
        return default
    _hit()
    return value
'''
_PUT = '''
def __setitem__(self, key, value):
    {setitem}
    _put()
'''
# A builtin dict's __setitem__ is a slot wrapper, slow to call; setdefault is not: a new key
# (the usual put, after a miss) or the same value again takes it alone.
_PUT_BUILTIN = '''
def __setitem__(self, key, value):
    if _setdefault(self, key, value) is not value:
        _setitem(self, key, value)
    _put()
'''
# A mapping with its own __setitem__ may evict inside it (a bounded dict subclass): entries
# that left during the put are capacity evictions.
# The length and membership are the mapping's own code: when they fail, the put still
# happens as it would without memexport, and no eviction is counted.
_PUT_EVICTING = '''
def __setitem__(self, key, value):
    try:
        n = {length} + (not {contains})
    except Exception:
        n = -1
    {setitem}
    _put()
    if n >= 0:
        try:
            gone = n - {length}
        except Exception:
            gone = 0
        if gone > 0:
            _handles.evicted(_capacity, gone)
'''
_PUT_SIZED = '''
def __setitem__(self, key, value):
    {setitem}
    _put()
    try:
        size = _as_size(_entry_size(key, value))
    except Exception as exc:  # the bytes are unknown now, until the cache is empty
        _record_error(exc)
        {sizes}.pop(key, None)
        {total} = _NAN
        return
    sizes = {sizes}
    old = sizes.get(key, 0.0)
    sizes[key] = size
    {total} += size - old
'''
_REMOVALS = '''
def __delitem__(self, key):
    value = _MISSING
    if _sized:
        try:
            value = {get}
        except Exception:
            pass
    {delitem}
    _removed(self, ((key, value),))

def pop(self, key, *default):
    value = {pop}
    if value is _MISSING:
        if default:
            return default[0]
        raise KeyError(key)
    _removed(self, ((key, value),))
    return value

def popitem(self, *args, **kwargs):
    key, value = {popitem}
    _removed(self, ((key, value),))
    return key, value

def clear(self):
    try:
        gone = {items} if _sized else [None] * {length}
    except Exception:  # the mapping's own len/items failed: clear it, count nothing
        gone = ()
    {clear}
    _removed(self, gone)

def setdefault(self, key, default=None):
    value = {get}
    if value is not _MISSING:
        _hit()
        return value
    _miss()
    self[key] = default
    return default

def update(self, other=(), /, **kwargs):
    if isinstance(other, _Mapping):
        for key in other:
            self[key] = other[key]
    elif hasattr(other, "keys"):
        for key in other.keys():
            self[key] = other[key]
    else:
        for key, value in other:
            self[key] = value
    for key, value in kwargs.items():
        self[key] = value

def __ior__(self, other):
    self.update(other)
    return self

def _removed(self, entries):
    n = 0
    nbytes = 0.0
    sizes = {sizes} if _sized else None
    for entry in entries:
        n += 1
        if sizes is not None and entry is not None:
            try:
                nbytes += sizes.pop(entry[0], 0.0)
            except TypeError:  # an unhashable key: it was never stored either
                pass
    if n:
        if sizes is not None:
            {total} -= nbytes
            if {total} != {total}:  # unknown since a size failed: known again once empty
                try:
                    empty = not {length}
                except Exception:
                    empty = False
                if empty:
                    sizes.clear()
                    {total} = 0.0
            _handles.evicted(_explicit, n, nbytes)
        else:
            _handles.evicted(_explicit, n)
'''


def mapping_methods(access: Mapping[str, str], handles: Any, *, has_missing: bool,
                    own_setitem: bool = False, entry_sizer: Callable[[Any, Any], Any] | None
                    = None, record_error: Callable[[BaseException], None] | None = None,
                    originals: Mapping[str, Any] | None = None, removals: bool = True
                    ) -> dict[str, Any]:
    """The counted methods of a mapping cache for one access style (``SELF`` or ``PROXY``).

    ``originals`` are the functions the access calls (``_getitem``, ``_get``, ...; with
    ``_setdefault``, puts go through it: see ``_PUT_BUILTIN``); see ``originals_of``.
    ``entry_sizer`` sizes each entry at put (exact bytes, kept in the ``sizes``/``total``
    slots); ``removals=False`` leaves ``del``/``pop``/``clear`` to the caller (cachetools).
    """
    names: dict[str, Any] = {
        "_hit": handles.hit, "_miss": handles.miss, "_put": handles.put,
        "_capacity": handles.capacity, "_explicit": handles.explicit, "_handles": handles,
        "_MISSING": MISSING, "_Mapping": Mapping, "_sized": entry_sizer is not None,
        "_entry_size": entry_sizer, "_record_error": record_error or (lambda exc: None),
        "_as_size": as_size, "_NAN": math.nan,
        **(originals or {}),
    }
    template = _LOOKUPS_MISSING if has_missing else _LOOKUPS
    if entry_sizer is not None:
        template += _PUT_SIZED
    elif own_setitem:
        template += _PUT_EVICTING
    elif "_setdefault" in names:
        template += _PUT_BUILTIN
    else:
        template += _PUT
    if removals:
        template += _REMOVALS
    funcs = compile_functions(template, names, filename="<memexport mapping cache>", **access)
    return {k: v for k, v in funcs.items() if k.startswith("__") or not k.startswith("_")}


def originals_of(cls: Any) -> dict[str, Any]:
    """The mapping methods of ``cls`` under the names the templates call them by."""
    return {"_getitem": cls.__getitem__, "_get": cls.get, "_setitem": cls.__setitem__,
            "_delitem": cls.__delitem__, "_pop": cls.pop, "_popitem": cls.popitem,
            "_clear": cls.clear, "_contains": cls.__contains__, "_len": cls.__len__,
            "_items": cls.items}
