"""Process-memory collector thread (placeholder: being written)."""

from __future__ import annotations

from typing import Any

from memexport.registry import REGISTRY, Registry

__all__ = ["start_collector", "stop_collector"]


def start_collector(interval: float = 15.0, *, registry: Registry = REGISTRY, **_: Any) -> None:
    """Start the process collector thread (placeholder)."""


def stop_collector() -> None:
    """Stop the process collector thread (placeholder)."""
