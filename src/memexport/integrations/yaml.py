"""PyYAML: memexport's tracked builtins dump as the builtins they are.

PyYAML picks a representer by exact type (``SafeRepresenter`` knows ``dict`` and ``list``,
not their subclasses), so ``yaml.safe_dump(memexport.cache({...}, name=...))`` would fail
and ``yaml.dump`` would write a ``!!python/object`` tag naming a memexport class. This
adapter registers a multi-representer for each tracked root (``instrument.tracked.ROOTS``)
on PyYAML's representers that dump the plain builtin holding the same items: the output
is what the plain builtin gives (an error where that errs: ``safe_dump`` of a deque), and
an object met twice in one document is an alias, as a plain one would be. An object tracked
in place by moving it into a subclass (``instrument.moving``) dumps as its class's object.

Loaded by ``instrument.adapters`` as soon as PyYAML is imported (before or after memexport);
``undo()`` removes the representers.
"""

from __future__ import annotations

from typing import Any

import yaml
from yaml.representer import Representer, SafeRepresenter

from memexport.instrument.moving import Moved, moved_base
from memexport.instrument.tracked import ROOTS, plain

__all__ = ["install", "shapes", "undo"]

_added: list[tuple[type, type]] = []  # (representer class, tracked root)


def _represent(dumper: Any, data: Any) -> Any:
    node = dumper.represent_data(plain(data))
    if not dumper.ignore_aliases(data):  # met again in this document: an alias to it
        dumper.represented_objects[id(data)] = node
    return node


class _Reduced:
    """Stands for a moved object in ``Representer.represent_object``: its reduce value,
    naming the original class (``copyreg.__newobj__`` and all, which pickle refuses)."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def __reduce_ex__(self, protocol: Any) -> Any:
        return self.value


def _represent_moved(dumper: Any, data: Any) -> Any:
    moved = type(data)
    base = moved_base(moved)
    if base is None:  # a class of the app's deriving from a moved one
        return dumper.represent_object(data)
    rv = base.__reduce_ex__(data, 2)  # type: ignore[call-arg]
    if isinstance(rv, tuple) and len(rv) >= 2 and rv[1] and rv[1][0] is moved:
        rv = (rv[0], (base, *rv[1][1:]), *rv[2:])
    return dumper.represent_object(_Reduced(rv))


def _representers() -> list[type]:
    """PyYAML's representer classes that own a multi-representer table (or will)."""
    out: list[type] = [SafeRepresenter, Representer]
    for name in ("SafeDumper", "Dumper", "CSafeDumper", "CDumper"):
        cls = getattr(yaml, name, None)
        if isinstance(cls, type) and "yaml_multi_representers" in vars(cls):
            out.append(cls)  # a table of its own (someone registered on it already)
    return out


def install() -> None:
    """Register the representers (done at import; again after ``undo()``)."""
    if _added:
        return
    for cls in _representers():
        for root in ROOTS.values():
            cls.add_multi_representer(root, _represent)  # type: ignore[attr-defined]
            _added.append((cls, root))
        if hasattr(cls, "represent_object"):  # not the safe ones: they refuse objects
            cls.add_multi_representer(Moved, _represent_moved)  # type: ignore[attr-defined]
            _added.append((cls, Moved))


def undo() -> None:
    """Remove the representers this adapter registered."""
    while _added:
        cls, root = _added.pop()
        table = vars(cls).get("yaml_multi_representers")
        if table is not None and table.get(root) in (_represent, _represent_moved):
            del table[root]


def shapes(kind: str) -> tuple[()]:
    """No shapes: this adapter changes how tracked objects dump, not what is recognised
    (asked again after ``adapters.unload``, it puts its representers back)."""
    install()
    return ()


install()
