"""An example kind, as docs/adding-a-kind.md builds it: in-memory vector stores.

This one module is all a kind needs (plus one line in ``memexport/__init__.py`` and its
test): the metric table, the events, one shape, the spec and the public function.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, overload

from memexport.core.model import Kind, MetricDef
from memexport.core.registry import REGISTRY, Profile, Registry, SizeSpec
from memexport.core.sizing import shallow_size
from memexport.instrument.events import Events, Handles, count
from memexport.instrument.kind import NOT_GIVEN, KindSpec, Shape
from memexport.instrument.proxy import proxy_base

T = TypeVar("T")

VECTORS = "memexport_vector_store_vectors"
BYTES = "memexport_vector_store_bytes"
QUERIES = "memexport_vector_store_queries_total"
UPSERTS = "memexport_vector_store_upserts_total"

KIND = Kind("vector_store", "vector_store", (
    MetricDef(VECTORS, "gauge", "Vectors held by the store."),
    MetricDef(BYTES, "gauge", "Deep size of the stored vectors, sampled.", "bytes"),
    MetricDef(QUERIES, "counter", "Similarity queries."),
    MetricDef(UPSERTS, "counter", "Vectors added or replaced."),
), bytes_metric=BYTES)
REGISTRY.add_kind(KIND)


class VectorHandles(Handles):
    __slots__ = ()
    query: Callable[[], int]
    upsert: Callable[[], int]


EVENTS = Events(KIND, VectorHandles, query=count(QUERIES), upsert=count(UPSERTS))


class StoreShape(Shape):
    """Any object with ``add(id, vector)``, ``query(vector, k)`` and a ``vectors`` dict."""

    style = "proxy"
    label = "a vector store"

    def matches(self, obj: Any, opts: Any) -> bool:
        return all(callable(getattr(obj, m, None)) for m in ("add", "query")) and isinstance(
            getattr(obj, "vectors", None), dict)

    def base(self, obj: Any) -> type:
        return proxy_base("vector_store")

    def methods(self, handles: Any, obj: Any, opts: Any) -> dict[str, Any]:
        add, query = type(obj).add, type(obj).query
        upserted, queried = handles.upsert, handles.query

        def add_counted(self: Any, key: Any, vector: Any) -> Any:
            result = add(self.__wrapped__, key, vector)
            upserted()
            return result

        def query_counted(self: Any, vector: Any, k: int = 5) -> Any:
            result = query(self.__wrapped__, vector, k)
            queried()
            return result

        return {"add": add_counted, "query": query_counted}

    def profile(self, obj: Any, opts: Any, kind: Kind) -> Profile:
        return Profile(kind, {VECTORS: lambda s: len(s.vectors)},
                       size=SizeSpec(lambda s: s.vectors.items(), lambda s: len(s.vectors),
                                     lambda s: shallow_size(s.vectors), True))


SPEC = KindSpec(KIND, EVENTS, (StoreShape(),), what="vector store",
                hint="give it add(id, vector), query(vector, k) and a vectors dict")


@overload
def vector_store(obj: T, name: str, *, registry: Registry = ...) -> T: ...
@overload
def vector_store(*, name: str, registry: Registry = ...) -> Callable[[T], T]: ...


def vector_store(obj: Any = NOT_GIVEN, name: Any = None, *,
                 registry: Registry = REGISTRY) -> Any:
    """Instrument an in-memory vector store under ``name``; use what it returns."""
    if obj is NOT_GIVEN:
        SPEC.check_call(name, registry)
        return lambda target: SPEC.instrument(target, name, registry, None)
    return SPEC.instrument(obj, name, registry, None)
