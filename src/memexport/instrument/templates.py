"""Hot methods generated from one template, so no bookkeeping body is written twice.

A hot method must be flat (a helper call per event would cost more than the bookkeeping) and
comes in variants: on a proxy it reaches the object through ``self.__wrapped__``, on a
tracked builtin or a patched class through the original method called with ``self``; in
asyncio it awaits. Writing each variant out copies the body; instead the body is written
once with placeholders and compiled per variant (``compile_functions``), with the name's
counters and the originals as the generated functions' globals.
"""

from __future__ import annotations

import itertools
import re
import textwrap
from collections.abc import Mapping
from types import CodeType
from typing import Any

__all__ = ["compile_functions", "forwarding", "is_count_step"]

#: Compiled sources, so a new name costs an ``exec`` of its module code, not a compile (about
#: a millisecond, long enough for signal handlers to pile up). Bounded: the sources come from
#: the templates and the signatures of the instrumented classes.
_CODE: dict[tuple[str, str, tuple[tuple[str, str], ...], tuple[str, ...]], CodeType] = {}
_CODE_MAX = 1024


def compile_functions(template: str, names: Mapping[str, Any], *,
                      filename: str = "<memexport>", **subst: str) -> dict[str, Any]:
    """Compile the ``def``s of ``template`` with ``{placeholders}`` filled from ``subst``.

    ``names`` are the globals the functions see (counters, original methods, helpers).
    Returns ``{function name: function}`` for the functions the template defines.
    """
    counts = tuple(sorted(k for k, v in names.items() if is_count_step(v)))
    key = (template, filename, tuple(sorted(subst.items())), counts)
    code = _CODE.get(key)
    if code is None:
        source = textwrap.dedent(template)
        if subst:
            source = source.format(**subst)
        if counts:
            source = _COUNT_CALL.sub(
                lambda m: f"_mx_next({m[1]}_mx_c)" if m[1] in counts else m[0], source)
        code = compile(source, filename, "exec")
        if len(_CODE) < _CODE_MAX:
            _CODE[key] = code
    scope: dict[str, Any] = {"__name__": "memexport.generated", **names}
    if counts:
        scope["_mx_next"] = next
        for k in counts:
            scope[k + "_mx_c"] = names[k].__self__
    before = set(scope)
    exec(code, scope)
    out = {k: v for k, v in scope.items()
           if k not in before and callable(v) and not k.startswith("__builtins")}
    for fn in out.values():
        # Each name's function gets a code object of its own: the interpreter's inline
        # caches live in it, and one shared by names whose objects have other types would
        # keep respecialising (and backing off) as the names take turns.
        code_of = getattr(fn, "__code__", None)
        if code_of is not None:
            fn.__code__ = code_of.replace()
    return out


#: ``_name()`` in a template, where ``_name`` may be a counter's step.
_COUNT_CALL = re.compile(r"(?<![\w.])(_\w+)\(\)")
_COUNT_TYPES = (type(itertools.count()), type(itertools.repeat(None, 1)))


def is_count_step(fn: Any) -> bool:
    """Whether ``fn`` is a counter's ``inc``: the ``__next__`` of an ``itertools.count`` or
    ``repeat``. A template calling it as ``_x()`` calls ``next(it)`` instead, a builtin's
    fast call (about 120 instructions fewer than a method-wrapper's, which goes through an
    argument tuple)."""
    return type(fn) is _STEP_TYPE and type(getattr(fn, "__self__", None)) in _COUNT_TYPES


_STEP_TYPE = type(itertools.count().__next__)

_GENERIC: tuple[str, str, dict[str, Any]] = ("*args, **kwargs", "*args, **kwargs", {})


def forwarding(fn: Any, skip_first: bool = True) -> tuple[str, str, dict[str, Any]]:
    """``(parameters, call arguments, defaults)`` copying ``fn``'s signature, so a generated
    wrapper passes its arguments on as they came (``*args, **kwargs`` forwarding alone costs
    more than a pool's bookkeeping). Defaults are named ``_mx_d<i>`` in the returned dict.
    Falls back to ``*args, **kwargs`` for signatures it cannot copy; ``skip_first`` drops
    ``self``.
    """
    import inspect

    P = inspect.Parameter
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return _GENERIC
    if skip_first:
        if not params or params[0].kind not in (P.POSITIONAL_ONLY, P.POSITIONAL_OR_KEYWORD):
            return _GENERIC
        params = params[1:]
    out: list[str] = []
    call: list[str] = []
    ns: dict[str, Any] = {}
    last_pos_only = max((i for i, p in enumerate(params) if p.kind is P.POSITIONAL_ONLY),
                        default=-1)
    star = False
    for i, p in enumerate(params):
        if not p.name.isidentifier() or p.name.startswith("_mx_") or p.name == "self":
            return _GENERIC
        if p.kind is P.VAR_POSITIONAL:
            out.append("*" + p.name)
            call.append("*" + p.name)
            star = True
            continue
        if p.kind is P.VAR_KEYWORD:
            out.append("**" + p.name)
            call.append("**" + p.name)
            continue
        if p.kind is P.KEYWORD_ONLY and not star:
            out.append("*")
            star = True
        piece = p.name
        if p.default is not P.empty:
            ns[f"_mx_d{i}"] = p.default
            piece += f"=_mx_d{i}"
        out.append(piece)
        call.append(f"{p.name}={p.name}" if p.kind is P.KEYWORD_ONLY else p.name)
        if i == last_pos_only:
            out.append("/")
    return ", ".join(out), ", ".join(call), ns
