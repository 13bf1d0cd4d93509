"""Issue 11 item 2: what every instrumented object promises to serialisers.

Before, ``json.dumps(memexport.cache({"u1": {...}}, name="sessions"))`` raised ``TypeError``:
the cache was a proxy, which fails C-level type checks. Now, per shape (docs/instrumenting.md,
"Guarantees"):

- tracked builtins (dict, OrderedDict, defaultdict, deque, list) are subclasses of the
  builtin: json, yaml (through memexport's PyYAML adapter), pickle, copy, deepcopy and
  ``dict(x)``/``list(x)`` give exactly what the plain builtin gives;
- proxies give what the wrapped object gives, for every object that is not itself a
  builtin subclass; a proxy of a dict subclass is not a dict at C level, so json refuses it
  (decorate the class instead: its instances stay real instances);
- shapes that return the object itself (lru_cache, patched classes) are the object.

Each case compares the instrumented object with a bare twin: the same output, or the same
exception type.
"""

from __future__ import annotations

import copy
import json
import pickle
import sys
from collections.abc import Callable
from typing import Any

import pytest
import yaml

import memexport
from tests.adversarial.support import (
    BoundedDict,
    Registry,
    cache_objects,
    conversation_objects,
    pool_objects,
    value,
)


def _plain(result: Any) -> Any:
    """What identifies a serialiser's result: its type and, where comparable, content."""
    kind = type(result).__qualname__
    try:
        if isinstance(result, dict):
            return kind, sorted(result.items(), key=repr)
        if isinstance(result, list | tuple | str | bytes) or hasattr(result, "maxlen"):
            return kind, list(result) if not isinstance(result, str | bytes) else result
        if hasattr(result, "keys") and hasattr(result, "items"):
            return kind, sorted(result.items(), key=repr)
    except Exception as exc:
        return kind, type(exc).__name__
    return kind, None


OPS: dict[str, Callable[[Any], Any]] = {
    "json": lambda x: json.dumps(x, sort_keys=True),
    "yaml.safe_dump": yaml.safe_dump,
    "yaml.dump": yaml.dump,
    "pickle": lambda x: _plain(pickle.loads(pickle.dumps(x))),
    "copy": lambda x: _plain(copy.copy(x)),
    "deepcopy": lambda x: _plain(copy.deepcopy(x)),
    "dict()": lambda x: _plain(dict(x)),
    "list()": lambda x: _plain(list(x)),
}


def outcome(op: Callable[[Any], Any], obj: Any) -> tuple[str, Any]:
    try:
        return "ok", op(obj)
    except Exception as exc:
        return "raised", type(exc).__name__


def _cases() -> list[tuple[str, str, Callable[[], Any]]]:
    out = []
    for kind, objects in (("cache", cache_objects()), ("pool", pool_objects()),
                          ("conversation", conversation_objects())):
        for label, make in objects.items():
            out.append((kind, label, make))
    return out


CASES = _cases()
#: The one promise that differs from the bare object (see the module doc).
DIFFERS = {("cache", "dict subclass", "json")}


@pytest.mark.parametrize("op", list(OPS))
@pytest.mark.parametrize(("kind", "label", "make"), CASES, ids=[f"{k}:{n}" for k, n, _ in CASES])
def test_serialisers_see_what_they_see_of_the_bare_object(
        kind: str, label: str, make: Callable[[], Any], op: str) -> None:
    reg = Registry()
    bare, twin = make(), make()
    instrument = getattr(memexport, kind)
    obj = instrument(twin, name="serialised", registry=reg)
    got, want = outcome(OPS[op], obj), outcome(OPS[op], bare)
    if (kind, label, op) in DIFFERS:
        assert want[0] == "ok" and got == ("raised", "TypeError")
    else:
        assert got == want
    for x in (bare, obj):  # executors start no thread here; shut them anyway
        shutdown = getattr(x, "shutdown", None)
        if callable(shutdown):
            shutdown(wait=False)


def test_a_session_dict_serialises_as_a_dict() -> None:
    """The issue's reproduction, word for word."""
    reg = Registry()
    sessions = memexport.cache({"u1": {"cart": [1, 2]}}, name="sessions", registry=reg)
    assert json.dumps(sessions) == '{"u1": {"cart": [1, 2]}}'
    assert yaml.safe_load(yaml.safe_dump(sessions)) == {"u1": {"cart": [1, 2]}}
    assert type(pickle.loads(pickle.dumps(sessions))) is dict
    assert sessions["u1"] == {"cart": [1, 2]}
    assert value(reg, "memexport_cache_requests_total", result="hit") == 1


def test_nested_and_repeated_tracked_objects_dump_as_plain_ones() -> None:
    reg = Registry()
    inner = memexport.cache({"a": 1}, name="inner", registry=reg)
    history = memexport.conversation([inner, inner], name="nested", registry=reg)
    plain = [{"a": 1}, {"a": 1}]
    assert json.dumps({"h": history}) == json.dumps({"h": plain})
    shared = {"a": 1}
    assert yaml.dump({"h": history}) == yaml.dump({"h": [shared, shared]})  # an anchor
    assert yaml.safe_dump({"h": history}) == yaml.safe_dump({"h": [shared, shared]})


def test_a_decorated_dict_subclass_stays_a_dict_for_json() -> None:
    reg = Registry()

    @memexport.cache(name="decorated", registry=reg)
    class Sessions(BoundedDict):
        pass

    s = Sessions()
    s["u1"] = 1
    assert json.dumps(s) == '{"u1": 1}'
    assert value(reg, "memexport_cache_puts_total", cache="decorated") == 1


def test_the_yaml_adapter_is_picked_up_when_yaml_is_imported_after_memexport() -> None:
    from tests.adversarial.support import run_python

    code = """
import memexport, sys
d = memexport.cache({"k": [1]}, name="early")    # before yaml is imported
assert "yaml" not in sys.modules
import yaml
assert yaml.safe_dump(d) == "k:\\n- 1\\n", yaml.safe_dump(d)
assert yaml.dump(d) == "k:\\n- 1\\n", yaml.dump(d)
from memexport.instrument import adapters
adapters.unload("memexport.integrations.yaml")
try:
    yaml.safe_dump(d)
except yaml.representer.RepresenterError:
    print("undone")
"""
    proc = run_python(code, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "undone"


def test_memexport_imports_no_yaml_of_its_own() -> None:
    from tests.adversarial.support import run_python

    proc = run_python("import memexport, sys; memexport.cache({}, name='x'); "
                      "memexport.REGISTRY.collect(); print('yaml' in sys.modules)")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "False"
    assert "yaml" in sys.modules  # this process: the tests above imported it
