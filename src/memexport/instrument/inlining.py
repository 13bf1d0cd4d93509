"""A method's own body with the bookkeeping in the same frame, compiled from its source.

A tracked object's add method wrapping the original costs a frame and a call more than the
bookkeeping itself (about 450 instructions of some 1,500 per add). Where the original is a
plain function whose source is at hand and compiles to exactly the code that runs (its code
object compared field by field, line numbers included), the name's method is that source
with a prologue before its body and an epilogue before each ``return``: the app's code, in
its own file and lines, in one frame. Everything memexport adds is a ``_me_`` closure
variable (never a global of the app's module, which stays untouched); the app's globals are
its module's own, live. Anything else (no source, decorators, closures, generators, default
values, a source edited since import) gets ``None`` and keeps the wrapper.
"""

from __future__ import annotations
import __future__

import ast
import inspect
import textwrap
import types
from collections.abc import Callable, Mapping
from typing import Any

from memexport.instrument.templates import compile_functions, forwarding

__all__ = ["inlined", "method_with", "wrapper"]

_PREFIX = "_me_"
_NOT_PLAIN = (inspect.CO_GENERATOR | inspect.CO_COROUTINE | inspect.CO_ASYNC_GENERATOR
              | inspect.CO_ITERABLE_COROUTINE)
_FUTURES = [getattr(__future__, n).compiler_flag for n in __future__.all_feature_names]

#: (original code, its file, prologue, epilogue, closure names, always) -> the maker's code,
#: or None when the original cannot be inlined. Bounded: one entry per instrumented method
#: and template.
_MADE: dict[tuple[Any, ...], types.CodeType | None] = {}
_MADE_MAX = 256


def _owner_name(fn: types.FunctionType) -> str | None:
    """The name of the class ``fn`` was defined in (its qualname's), None at module level;
    its source is parsed in a class of that name, so private names mangle as they did."""
    parts = fn.__qualname__.split(".")
    if len(parts) == 1:
        return None
    owner = parts[-2]
    return owner if owner.isidentifier() else ""


def _parsed(fn: types.FunctionType) -> tuple[ast.Module, ast.FunctionDef] | None:
    """The parsed source of ``fn`` (annotations dropped), columns and lines as in its file,
    in a class named as its own, if it compiles to exactly ``fn.__code__``."""
    code = fn.__code__
    owner = _owner_name(fn)
    if owner == "":
        return None
    try:
        lines, first = inspect.getsourcelines(fn)
    except (OSError, TypeError):
        return None
    source = "".join(lines)
    if owner is not None:
        if first < 2 or not lines[0][:1].isspace():
            return None
        source = f"class {owner}:\n" + source
        first -= 1
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return None
    top = tree.body[0] if len(tree.body) == 1 else None
    if owner is not None:
        top = top.body[0] if isinstance(top, ast.ClassDef) and len(top.body) == 1 else None
    if not isinstance(top, ast.FunctionDef) or top.name != code.co_name or top.decorator_list:
        return None
    for arg in (*top.args.posonlyargs, *top.args.args, *top.args.kwonlyargs,
                top.args.vararg, top.args.kwarg):
        if arg is not None:
            arg.annotation = None  # evaluated where the class was made, not in the body
    top.returns = None
    ast.increment_lineno(tree, first - 1)
    made = _function_code(_compiled(tree, code), code.co_name, owner is not None)
    if made is None or not _same(made, code):  # the source on disk is not what runs
        return None
    return tree, top


def _same(made: types.CodeType, code: types.CodeType) -> bool:
    if hasattr(code, "co_qualname"):
        made = made.replace(co_qualname=code.co_qualname)
    return made == code


def _flags(code: types.CodeType) -> int:
    return sum(f for f in _FUTURES if code.co_flags & f)


def _compiled(tree: ast.Module, like: types.CodeType) -> types.CodeType | None:
    try:
        code: types.CodeType = compile(tree, like.co_filename, "exec", flags=_flags(like),
                                       dont_inherit=True)
    except (SyntaxError, ValueError):
        return None
    return code


def _function_code(module: types.CodeType | None, name: str, in_class: bool
                   ) -> types.CodeType | None:
    if module is None:
        return None
    for const in module.co_consts:
        if isinstance(const, types.CodeType):
            if in_class:
                return _function_code(const, name, False)
            if const.co_name == name:
                return const
    return None


class _Returns(ast.NodeTransformer):
    """``return x`` -> ``_me_r = x; <epilogue>; return _me_r`` in the function itself (not
    in functions or classes it defines)."""

    def __init__(self, epilogue: list[ast.stmt]) -> None:
        self.epilogue = epilogue

    def visit_Return(self, node: ast.Return) -> Any:
        value = node.value if node.value is not None else ast.Constant(None)
        out = [ast.Assign([ast.Name("_me_r", ast.Store())], value), *self.copy_at(node),
               ast.Return(ast.Name("_me_r", ast.Load()))]
        for stmt in out:
            for sub in ast.walk(stmt):
                if not hasattr(sub, "lineno") or sub is stmt:
                    ast.copy_location(sub, node)
        return out

    def copy_at(self, at: ast.AST) -> list[ast.stmt]:
        """A fresh copy of the epilogue, placed at ``at``'s line."""
        stmts = [ast.parse(ast.unparse(s)).body[0] for s in self.epilogue]
        for stmt in stmts:
            for sub in ast.walk(stmt):
                ast.copy_location(sub, at)
        return stmts

    def visit_FunctionDef(self, node: ast.FunctionDef) -> Any:
        return node

    visit_AsyncFunctionDef = visit_FunctionDef  # type: ignore[assignment]
    visit_ClassDef = visit_FunctionDef  # type: ignore[assignment]
    visit_Lambda = visit_FunctionDef  # type: ignore[assignment]


def _maker(fn: types.FunctionType, prologue: str, epilogue: str,
           closure: tuple[str, ...], always: bool) -> types.CodeType | None:
    code = fn.__code__
    if code.co_flags & _NOT_PLAIN or code.co_freevars or fn.__defaults__ \
            or fn.__kwdefaults__ or not code.co_varnames:
        return None
    if any(n.startswith(_PREFIX) for n in (*code.co_varnames, *code.co_names,
                                           *code.co_cellvars)):
        return None
    found = _parsed(fn)
    if found is None:
        return None
    tree, node = found
    fill = {"self": code.co_varnames[0]}
    before = ast.parse(prologue.format(**fill)).body
    after = ast.parse(epilogue.format(**fill)).body
    returns = _Returns(after)
    body = list(node.body)
    doc = body[:1] if (body and isinstance(body[0], ast.Expr)
                       and isinstance(body[0].value, ast.Constant)
                       and isinstance(body[0].value.value, str)) else []
    for stmt in before:
        for sub in ast.walk(stmt):
            ast.copy_location(sub, node)
    if always:  # the epilogue runs however the body ends
        tail = ast.Try(body=body[len(doc):] or [ast.Pass()], handlers=[], orelse=[],
                       finalbody=returns.copy_at(node))
        node.body = [*doc, *before, ast.copy_location(tail, node)]
    else:
        flat: list[ast.stmt] = []
        for stmt in body[len(doc):]:
            done = returns.visit(stmt)
            flat.extend(done if isinstance(done, list) else [done])
        node.body = [*doc, *before, *flat, *returns.copy_at(node)]
    top = tree.body[0]
    result: ast.expr = ast.Name(node.name, ast.Load())
    if isinstance(top, ast.ClassDef):
        result = ast.Attribute(ast.Name(top.name, ast.Load()), node.name, ast.Load())
    fields: dict[str, Any] = {"type_params": []} if "type_params" in ast.FunctionDef._fields \
        else {}
    maker = ast.FunctionDef(
        name="_me_make",
        args=ast.arguments(posonlyargs=[], args=[ast.arg(n) for n in closure], vararg=None,
                           kwonlyargs=[], kw_defaults=[], kwarg=None, defaults=[]),
        body=[top, ast.Return(result)], decorator_list=[], returns=None, **fields)
    module = ast.Module([maker], type_ignores=[])
    ast.copy_location(maker, top)
    ast.fix_missing_locations(module)
    return _compiled(module, code)


def inlined(fn: Callable[..., Any], prologue: str, epilogue: str,
            names: Mapping[str, Any], *, always: bool = False) -> types.FunctionType | None:
    """``fn`` with ``prologue`` run before its body and ``epilogue`` before it returns
    (``{self}`` in both: its first parameter; ``always``: also when it raises, as a
    ``finally``), reading ``names`` (all ``_me_``-prefixed) as closure variables; None if
    ``fn`` cannot be compiled so (the caller wraps it)."""
    if not isinstance(fn, types.FunctionType):
        return None
    closure = tuple(sorted(names))
    # A code object's equality leaves out its file: two files' identical methods differ here.
    key = (fn.__code__, fn.__code__.co_filename, prologue, epilogue, closure, always)
    if key in _MADE:
        made = _MADE[key]
    else:
        try:
            made = _maker(fn, prologue, epilogue, closure, always)
        except (RecursionError, MemoryError):
            made = None
        if len(_MADE) < _MADE_MAX:
            _MADE[key] = made
    if made is None:
        return None
    scope: dict[str, Any] = {}
    exec(made, fn.__globals__, scope)  # defines _me_make in scope, not in the app's module
    out: types.FunctionType = scope["_me_make"](*(names[n] for n in closure))
    out.__code__ = out.__code__.replace()  # inline caches of its own (see templates)
    out.__qualname__ = fn.__qualname__
    out.__module__ = fn.__module__
    out.__doc__ = fn.__doc__
    out.__annotations__ = dict(fn.__annotations__)
    out.__dict__.update(fn.__dict__)
    return out


_WRAPPER = '''
def {name}(self, {params}):
{prologue}
    _me_r = _me_original(self, {call})
{epilogue}
    return _me_r
'''
_WRAPPER_ALWAYS = '''
def {name}(self, {params}):
{prologue}
    try:
        return _me_original(self, {call})
    finally:
{epilogue}
'''


def wrapper(fn: Callable[..., Any], prologue: str, epilogue: str, names: Mapping[str, Any],
            *, always: bool = False) -> Any:
    """What ``inlined`` makes, as a wrapper calling ``fn`` (same signature, one frame more):
    for a method whose source cannot be used."""
    params, call, defaults = forwarding(fn)
    name = getattr(fn, "__name__", "method")
    name = name if name.isidentifier() and not name.startswith(_PREFIX) else "method"
    indent = " " * (8 if always else 4)
    source = (_WRAPPER_ALWAYS if always else _WRAPPER).format(
        name=name, params=params, call=call,
        prologue=textwrap.indent(prologue.format(self="self").strip("\n"), "    ") or "    pass",
        epilogue=textwrap.indent(epilogue.format(self="self").strip("\n"), indent)
        or indent + "pass")
    return compile_functions(source, {**names, **defaults, "_me_original": fn},
                             filename="<memexport wrapper>")[name]


def method_with(fn: Callable[..., Any], prologue: str, epilogue: str,
                names: Mapping[str, Any], *, always: bool = False) -> Any:
    """``fn`` with ``prologue`` and ``epilogue`` in its own body where it can be
    (``inlined``), else around it (``wrapper``)."""
    return (inlined(fn, prologue, epilogue, names, always=always)
            or wrapper(fn, prologue, epilogue, names, always=always))
