"""One kind abstraction: the entry every ``memexport.<kind>()`` call goes through.

A kind (cache, pool, conversation, agent, cleanup) is its metric table (``core.model.Kind``),
its events (``instrument.events``) and a list of ``Shape``s: the families of objects it
recognises. A shape answers four questions: does it match this object (or class), what
gauges and pulled counters does it read (its ``Profile``), what is its sampled size (the
profile's ``SizeSpec``), and what hot-path methods does it add. Its ``style`` says how:

- ``read``: nothing is wrapped, everything is read at scrape (``functools.lru_cache``);
- ``proxy``: a proxy of the object, its class made once per name (cachetools, pools);
- ``tracked``: a builtin subclass holding the same items (``dict``, ``deque``, ``list``);
- ``patch``: the object's class gets its methods replaced once, and passes objects that are
  not tracked straight through (conversations, agents); a class decorated with the kind gets
  the same, with every instance registered as ``__new__`` makes it;
- ``listen``: the library's own events (SQLAlchemy pools).

``KindSpec.instrument`` is the one path: one validation of the name, one double-
instrumentation rule (the same object under the same name is returned as it is; under
another name it is a ``ValueError``), one class registration point (``__new__``), one error
text for unrecognised objects, and ``uninstrument``. Adapters for third-party libraries
(``instrument.adapters``) add shapes and are asked first.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Hashable, Sequence
from typing import Any, TypeVar

from memexport.core import forks
from memexport.core.checks import shown, validate_name
from memexport.core.errors import raised_at, raised_by_memexport
from memexport.core.importing import refuse_inside_import
from memexport.core.model import Kind
from memexport.core.registry import Component, Group, Index, Profile, Registry
from memexport.instrument import adapters, moving, patching
from memexport.instrument.derive import derived_class, named_as
from memexport.instrument.detach import detach, is_proxy
from memexport.instrument.events import Events
from memexport.instrument.shape import Shape, Style, on_target, proxied, replacing

__all__ = ["NOT_GIVEN", "SPECS", "ClassPlan", "KindSpec", "Shape", "Style", "on_target",
           "replacing", "uninstrument"]

T = TypeVar("T")

#: The "no object given" default of the public functions (decorator use).
NOT_GIVEN: Any = type("NotGiven", (), {"__repr__": lambda self: "NOT_GIVEN"})()


class ClassPlan:
    """A class decorated with a kind: its name's group, shape, options and profile."""

    __slots__ = ("__weakref__", "group", "opts", "profile", "shape", "tag")

    def __init__(self, group: Group, shape: Shape, opts: Any, tag: str) -> None:
        self.group = group
        self.shape = shape
        self.opts = opts
        self.tag = tag
        self.profile: Profile | None = None


class KindSpec:
    """A kind's shapes and the one entry point through which every object reaches them."""

    def __init__(self, kind: Kind, events: Events, shapes: Sequence[Shape], *,
                 what: str, hint: str) -> None:
        self.kind = kind
        self.events = events
        self.shapes = tuple(shapes)
        #: "cache", "pool": how error texts name the kind's objects.
        self.what = what
        #: What to pass for an object no shape recognises (ends the TypeError).
        self.hint = hint
        #: Every instrumented object of this kind: ``id(object) -> component`` (the object
        #: the user passed: the proxy's target, the tracked builtin itself).
        self.index = Index()
        self._profiles: dict[tuple[int, Hashable, Hashable, bool], Profile] = {}
        self._classes: weakref.WeakKeyDictionary[type, ClassPlan] = weakref.WeakKeyDictionary()
        self._plans: weakref.WeakKeyDictionary[type, dict[Any, tuple[Shape, Any, Profile]]] = (
            weakref.WeakKeyDictionary())
        self._patched: weakref.WeakKeyDictionary[type, set[Any]] = weakref.WeakKeyDictionary()
        self._moved: weakref.WeakKeyDictionary[type, dict[Any, Any]] = (
            weakref.WeakKeyDictionary())
        self._names: set[str] = set()
        self._lock = forks.RLock()  # re-entrant (signal handlers), fresh after fork
        SPECS.append(self)

    def instrumented(self, target: Any) -> bool:
        """Whether ``target`` (an object or a class) is instrumented as this kind."""
        if isinstance(target, type):
            return target in self._classes
        return self.claimed(target) is not None

    # -- recognition ------------------------------------------------------------------------

    def shape_for(self, obj: Any, opts: Any) -> Shape:
        failed: Exception | None = None
        for shape in (*adapters.shapes(self.kind.name), *self.shapes):
            try:
                if shape.matches(obj, opts):
                    return shape
            except Exception as exc:  # the object's own attribute lookup failed: no match
                failed = failed or exc
        why = f" (reading it raised {type(failed).__name__})" if failed is not None else ""
        raise TypeError(f"memexport.{self.kind.name} does not recognise "
                        f"{_article(_type_name(obj))}{why}: {self.hint}")

    def class_shape_for(self, cls: type, opts: Any) -> Shape:
        for shape in (*adapters.shapes(self.kind.name), *self.shapes):
            if shape.matches_class(cls, opts):
                return shape
        raise TypeError(f"memexport.{self.kind.name} cannot instrument the class "
                        f"{shown(cls.__qualname__)}: {self.hint}")

    def profile_of(self, shape: Shape, obj: Any, opts: Any, *, proxy: bool = False,
                   variant: Any = NOT_GIVEN) -> Profile:
        """The profile of ``obj``'s variant of ``shape`` with these options (made once);
        ``proxy``: for the proxy of ``obj``, whose readers unwrap it."""
        if variant is NOT_GIVEN:
            variant = shape.variant(obj, opts)
        key = (id(shape), variant, opts, proxy)
        profile = self._profiles.get(key)
        if profile is None:
            profile = shape.profile(obj, opts, self.kind)
            if proxy:
                profile = proxied(profile)
            with self._lock:
                profile = self._profiles.setdefault(key, profile)
        return profile

    def check_call(self, name: Any, registry: Any) -> None:
        """Validate the name and registry of a decorator call now, not at decoration."""
        if name not in self._names:
            validate_name(self.kind.name, name)
            if len(self._names) < 10_000:
                self._names.add(name)
        if not isinstance(registry, Registry):
            raise ValueError(f"registry={shown(registry)} is not a memexport Registry")

    def plan_for(self, obj: Any, opts: Any) -> tuple[Shape, Any, Profile]:
        """(shape, variant, profile) of ``obj``: worked out once per type and options for a
        shape that depends on them alone."""
        cls = type(obj)
        try:
            per_type = self._plans.get(cls)
        except TypeError:  # a type that takes no weak reference: no cache
            per_type = None
        plan = per_type.get(opts) if per_type is not None else None
        if plan is not None:
            return plan
        shape = self.shape_for(obj, opts)
        shape.check(obj, opts)
        variant = shape.variant(obj, opts)
        plan = (shape, variant, self.profile_of(shape, obj, opts, proxy=shape.style == "proxy",
                                                variant=variant))
        if shape.by_type:
            try:
                self._plans.setdefault(cls, {})[opts] = plan
            except TypeError:
                pass
        return plan

    def handles(self, registry: Registry, name: str) -> Any:
        """The hot-path handles of ``name`` in ``registry`` (its group's, bound once)."""
        return self.events.bind(registry.group(self.kind, name))

    # -- instrumenting ----------------------------------------------------------------------

    def claimed(self, obj: Any) -> Component | None:
        comp = self.index.get(id(obj))
        if comp is None and is_proxy(obj):
            comp = object.__getattribute__(obj, "_self_component")
            if comp is None or comp.group.kind is not self.kind:
                return None  # a proxy of another kind
        elif comp is None and hasattr(type(obj), "__memexport_tracked__"):
            comp = getattr(obj, "_me_component", None)  # a view, found by its original
            if comp is None or comp.group.kind is not self.kind or comp() is not obj:
                return None  # (a list counting for the object holding it is no claim)
        return comp

    def instrument(self, obj: Any, name: Any, registry: Registry, opts: Any) -> Any:
        """Instrument ``obj`` (an object or a class) as ``name``; return what to use."""
        refuse_inside_import(f"memexport.{self.kind.name}")  # a signal handler mid-import
        self.check_call(name, registry)
        if isinstance(obj, type):
            return self._instrument_class(obj, name, registry, opts)
        with self._lock:  # re-entrant: a signal handler instrumenting in this thread is fine
            existing = self.claimed(obj)
            target = existing() if existing is not None else None
            if target is not None and existing is not None:  # (a dead object's entry, left
                # by a callback that failed, say in a RecursionError, is no claim: id reused)
                if existing.group.name != name and not (
                        existing.group.name == "__overflow__"):
                    raise ValueError(
                        f"this {_type_name(obj)} is already instrumented as "
                        f"{self.kind.name} {existing.group.name!r}, not {shown(name)}: "
                        f"instrument it once and share the object returned")
                return target
            try:
                shape, variant, profile = self.plan_for(obj, opts)
                group = registry.group(self.kind, name)
                # A read shape pushes nothing: no event series of its own (they would read 0).
                handles = self.events.bind(group) if shape.style != "read" else None
                with registry.wiring:
                    return self._wire(shape, variant, obj, group, handles, profile, registry,
                                      opts)
            except adapters.AdapterLoading:
                raise
            except Exception as exc:
                if raised_by_memexport(exc):  # a refusal of ours, with its own message
                    raise
                # The object's own code failed while it was read: its message may quote
                # the app's data, so only its type and where it was raised are shown.
                where = raised_at(exc)
                raise TypeError(
                    f"memexport.{self.kind.name} cannot instrument "
                    f"{_article(_type_name(obj))}: reading it raised {type(exc).__name__}"
                    f"{f' at {where}' if where else ''}; {self.hint}") from None

    def _wire(self, shape: Shape, variant: Any, obj: Any, group: Group, handles: Any,
              profile: Profile, registry: Registry, opts: Any) -> Any:
        style = shape.style
        if style == "proxy":
            moved = self._move(shape, variant, obj, group, handles, registry, opts)
            if moved is not None:
                return moved
        if style == "proxy" or style == "tracked":
            cls = derived_class(handles.classes, (id(shape), variant, opts),
                                shape.base(obj), lambda: shape.methods(handles, obj, opts))
            target = shape.build(cls, obj, opts)
            key = id(obj) if style == "proxy" or shape.view else id(target)
            comp = registry.register(target, self.kind, group, profile, index=self.index,
                                     key=key)
            setattr(target, "_self_component" if style == "proxy" else "_me_component", comp)
            shape.wired(target, obj, comp, handles, opts)
            return target
        if style == "patch":
            named = self._move(shape, variant, obj, group, handles, registry, opts)
            if named is not None:  # in the name's own subclass: no index lookup per call
                return named
            cls = type(obj)
            moved = moving.moved_class(self._moved, (id(shape), variant, opts), cls,
                                       lambda: shape.patches(cls, self.index, opts, profile))
            try:
                if moved is not None:
                    moving.move(obj, moved)  # other instances of the class stay untouched
            except TypeError:
                moved = None
            if moved is None:
                done = self._patched.setdefault(cls, set())
                if (id(shape), variant, opts) not in done:  # the class's methods, once
                    for attr, factory in shape.patches(cls, self.index, opts,
                                                       profile).items():
                        patching.patch(cls, attr, factory, f"{self.kind.name}:{attr}")
                    done.add((id(shape), variant, opts))
            try:
                comp = registry.register(obj, self.kind, group, profile, index=self.index)
            except BaseException:
                if moved is not None:
                    moving.move(obj, cls)
                raise
            shape.wired(obj, obj, comp, handles, opts)
            return obj
        comp = registry.register(obj, self.kind, group, profile, index=self.index)
        if style == "listen":
            shape.listen(obj, comp, handles, opts)
        shape.wired(obj, obj, comp, handles, opts)
        return obj

    def _move(self, shape: Shape, variant: Any, obj: Any, group: Group, handles: Any,
              registry: Registry, opts: Any) -> Any:
        """Track ``obj`` in place in the name's subclass of its class (``moved_methods``), or
        None when it is to be proxied (or, for a patch shape, handled the shared way)."""
        if type(shape).moved_methods is Shape.moved_methods:
            return None
        cls = type(obj)
        key = ("moved", id(shape), variant, opts, shape.moved_key(obj, opts))
        classes = handles.classes
        moved = classes.get(key, NOT_GIVEN)
        if moved is NOT_GIVEN:  # worked out once per name and key, a None included
            methods = shape.moved_methods(obj, handles, opts) if moving.movable(cls) else None
            moved = classes.setdefault(
                key, moving.subclass(cls, named_as(methods, cls)) if methods is not None
                else None)
        if moved is None:
            return None
        profile = self.profile_of(shape, obj, opts, variant=variant)
        try:
            moving.move(obj, moved)
        except TypeError:
            return None
        try:
            comp = registry.register(obj, self.kind, group, profile, index=self.index)
        except BaseException:
            moving.move(obj, cls)
            raise
        shape.wired(obj, obj, comp, handles, opts)
        return obj

    def on_new_instance(self, comp: Component, instance: Any, plan: ClassPlan) -> None:
        """Hook for kinds: per-instance set-up of a decorated class's new instance."""

    def _instrument_class(self, cls: type, name: str, registry: Registry, opts: Any) -> type:
        with self._lock:
            for klass in cls.__mro__:
                plan = self._classes.get(klass)
                if plan is not None:
                    if plan.group.name == name and klass is cls:
                        return cls
                    raise ValueError(
                        f"class {shown(cls.__qualname__)} is already instrumented as "
                        f"{self.kind.name} {plan.group.name!r}"
                        + (f" (through its base {klass.__qualname__})" if klass is not cls
                           else ""))
            if not cls.__weakrefoffset__:
                raise TypeError(f"memexport cannot track instances of "
                                f"{shown(cls.__qualname__)}: they do not support weak "
                                f"references (add '__weakref__' to its __slots__)")
            shape = self.class_shape_for(cls, opts)
            shape.check(cls, opts)
            group = registry.group(self.kind, name)
            handles = self.events.bind(group)
            tag = f"{self.kind.name}-class:{name}"
            plan = ClassPlan(group, shape, opts, tag)
            for attr, factory in self.class_patches(shape, cls, handles, plan).items():
                patching.patch(cls, attr, factory, tag, any_method=True)
            placeholder = Profile(self.kind, {}, resolve=self._resolver(plan))
            kind, index, reg = self.kind, self.index, registry.register
            errors = registry.errors

            on_new_instance = self.on_new_instance

            def on_new(instance: Any) -> None:
                try:
                    comp = reg(instance, kind, group, plan.profile or placeholder, index=index)
                    on_new_instance(comp, instance, plan)
                except Exception as exc:  # never fail the app's constructor
                    errors.record(kind.name, f"{kind.name} {group.name!r} "
                                  f"({type(instance).__qualname__} instance)", exc)

            patching.register_new(cls, on_new, tag)
            self._classes[cls] = plan
            return cls

    def class_patches(self, shape: Shape, cls: type, handles: Any, plan: ClassPlan
                      ) -> dict[str, Callable[[Callable[..., Any]], Callable[..., Any]]]:
        """The replacements for a decorated class (default: the shape's indexed patches)."""
        return shape.patches(cls, self.index, plan.opts, None)

    def _resolver(self, plan: ClassPlan) -> Callable[[Any], Profile]:
        def resolve(obj: Any) -> Profile:
            profile = plan.profile
            if profile is None:
                profile = plan.profile = plan.shape.class_profile(obj, plan.opts, self.kind,
                                                                  self.index)
            return profile
        return resolve

    # -- undoing ------------------------------------------------------------------------------

    def uninstrument(self, target: Any) -> Any:
        """Undo ``instrument``: the original object (or class), no longer counted. Its counts
        so far stay in the name's totals."""
        if isinstance(target, type):
            return self._uninstrument_class(target)
        comp = self.claimed(target)
        if comp is None:
            raise ValueError(f"this {shown(type(target).__qualname__)} is not instrumented "
                             f"as a {self.kind.name}")
        obj = comp()
        registry_unregister(comp, self.index)
        undo = getattr(comp.state, "undo", None)
        if callable(undo):
            undo()
        return detach(obj) if obj is not None else target

    def _uninstrument_class(self, cls: type) -> type:
        with self._lock:
            plan = self._classes.pop(cls, None)
            if plan is None:
                raise ValueError(f"class {shown(cls.__qualname__)} is not instrumented as a "
                                 f"{self.kind.name}")
            for attr in list(vars(cls)):
                fn = vars(cls)[attr]
                if getattr(getattr(fn, "__func__", fn), patching.MARK, None) == plan.tag:
                    patching.unpatch(cls, attr)
            for comp in list(plan.group.members.values()):
                obj = comp()
                if obj is not None and isinstance(obj, cls):
                    registry_unregister(comp, self.index)
            return cls


#: Every kind, in the order defined (``uninstrument`` asks each).
SPECS: list[KindSpec] = []


def uninstrument(target: T) -> T:
    """Undo ``memexport.<kind>(target, ...)``: returns the original object (the proxy's
    target, the object itself, or the class with its methods restored), no longer counted.
    Counts made so far stay in the name's totals. ``ValueError`` if it is not instrumented."""
    for spec in SPECS:
        if spec.instrumented(target):
            return spec.uninstrument(target)  # type: ignore[no-any-return]
    raise ValueError(f"this {_type_name(target) if not isinstance(target, type) else 'class'} "
                     f"is not instrumented by memexport")


def registry_unregister(comp: Component, index: Index) -> None:
    """Retire ``comp`` from its group now and drop it from ``index``."""
    registry = comp.group.owner()
    if registry is not None:
        registry.unregister(comp, index)
    elif index.entries.get(comp.key) is comp:
        index.entries.pop(comp.key, None)


def _type_name(obj: Any) -> str:
    """The class name of ``obj`` (the wrapped one's for a proxy), cut if very long."""
    try:
        name = obj.__class__.__qualname__
    except Exception:  # a __getattr__ raising anything: the real type then
        name = type(obj).__qualname__
    return name if isinstance(name, str) and len(name) <= 80 else name[:80] + "..."


def _article(noun: str) -> str:
    return f"an {noun}" if noun[:1].lower() in "aeiou" else f"a {noun}"
