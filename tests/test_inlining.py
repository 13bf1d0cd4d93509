"""The add method's own source with the bookkeeping in it (``instrument.inlining``): the
app's code, file and lines as they were; anything it cannot prove the same is left alone."""

from __future__ import annotations

import importlib
import itertools
import linecache
import sys
import traceback
from pathlib import Path
from typing import Any

import pytest

from memexport.instrument.inlining import inlined

MODULE = '''
from __future__ import annotations

import functools

LIMIT = 3


class Box:
    def __init__(self) -> None:
        self.items: list[int] = []
        self.__secret = "s"

    def add(self, item: int) -> str | None:
        """Adds one."""
        if item < 0:
            raise ValueError("negative")
        self.items.append(item)
        if len(self.items) > LIMIT:
            return "full"
        if item == 7:
            return None
        return self.__secret

    def nested(self, item):
        def helper():
            return item * 2
        self.items.append(helper())

    @functools.lru_cache(maxsize=None)
    def decorated(self, item):
        return item

    def closure_maker(self):
        x = 1
        def inner(self, item):
            return x
        return inner

    def with_default(self, item, twice=False):
        self.items.append(item)

    def gen(self, item):
        yield item
'''

COUNT = "_me_next(_me_count)\n"


@pytest.fixture()
def mod(tmp_path: Path) -> Any:
    path = tmp_path / "inl_box.py"
    path.write_text(MODULE)
    sys.path.insert(0, str(tmp_path))
    try:
        module = importlib.import_module("inl_box")
        yield module
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("inl_box", None)


def _counted(fn: Any, **kw: Any) -> tuple[Any, Any]:
    count = itertools.count()
    return inlined(fn, "", COUNT, {"_me_next": next, "_me_count": count}, **kw), count


def test_the_body_runs_as_written_and_each_return_counts(mod: Any) -> None:
    add, count = _counted(mod.Box.add)
    assert add is not None
    box = mod.Box()
    assert add(box, 1) == "s"  # a private name, mangled as in its class
    assert add(box, 7) is None
    assert add(box, 2) == "s"
    assert add(box, 3) == "full"
    assert next(count) == 4 and box.items == [1, 7, 2, 3]
    assert add.__qualname__ == "Box.add" and add.__doc__ == "Adds one."
    assert add.__annotations__ == mod.Box.add.__annotations__
    assert add.__code__.co_filename == mod.Box.add.__code__.co_filename
    assert "_me_make" not in vars(mod) and "_me_next" not in vars(mod)


def test_a_raise_counts_nothing_and_points_at_the_apps_line(mod: Any) -> None:
    add, count = _counted(mod.Box.add)
    with pytest.raises(ValueError) as info:
        add(mod.Box(), -1)
    frame = traceback.extract_tb(info.value.__traceback__)[-1]
    assert frame.filename == mod.__file__ and frame.line == 'raise ValueError("negative")'
    assert next(count) == 0


def test_always_runs_the_epilogue_when_the_body_raises(mod: Any) -> None:
    add, count = _counted(mod.Box.add, always=True)
    with pytest.raises(ValueError):
        add(mod.Box(), -1)
    assert add(mod.Box(), 1) == "s"
    assert next(count) == 2


def test_functions_it_cannot_prove_the_same_are_left_alone(mod: Any) -> None:
    box = mod.Box()
    for fn in (mod.Box.decorated, box.closure_maker(), mod.Box.with_default, mod.Box.gen,
               len, lambda self, item: None):
        assert _counted(fn)[0] is None, fn
    scope: dict[str, Any] = {}
    exec("def add(self, item):\n    self.items.append(item)\n", scope)  # no source file
    assert _counted(scope["add"])[0] is None
    nested, count = _counted(mod.Box.nested)  # a function it defines stays as it is
    assert nested is not None
    nested(box, 2)
    assert box.items == [4] and next(count) == 1


def test_a_source_edited_since_import_is_not_used(mod: Any) -> None:
    path = Path(mod.__file__)
    path.write_text(MODULE.replace('raise ValueError("negative")', 'raise KeyError("x")'))
    linecache.checkcache(str(path))
    try:
        assert _counted(mod.Box.add)[0] is None
    finally:
        linecache.checkcache(str(path))
