"""Process-wide settings of memexport."""

from __future__ import annotations

from memexport.core.registry import REGISTRY, Registry

__all__ = ["configure"]


def configure(*, max_names_per_kind: int | None = None, registry: Registry = REGISTRY) -> None:
    """Change settings; ``max_names_per_kind`` caps distinct names per kind (default 1,000)."""
    if max_names_per_kind is not None:
        registry.set_max_names(max_names_per_kind)
