"""CrewAI: the tool-result ``CacheHandler`` as an agent memory store, recognised by its shape.

crewai is not a dependency of memexport nor of its tests: installing it pulls in chromadb,
lancedb, tokenizers, openai, mcp and more, and pins pydantic below the version the rest of the
stack uses. Its ``CacheHandler`` (``crewai.agents.cache.cache_handler``) is a pydantic model
holding every tool result in a private ``_cache`` dict, written by ``add(tool, input,
output)`` and read by ``read(tool, input)``, never trimmed; memexport recognises any object
of that shape, so nothing here imports crewai. Tests use a faithful copy of the shape.
"""

from __future__ import annotations

from typing import Any

__all__ = ["agent_profile", "looks_like_cache_handler"]


def looks_like_cache_handler(obj: Any) -> bool:
    """A ``_cache`` dict plus ``add`` and ``read`` methods: CrewAI's ``CacheHandler`` shape."""
    cls = type(obj)
    if not (callable(getattr(cls, "add", None)) and callable(getattr(cls, "read", None))):
        return False
    try:
        cache = obj._cache
    except AttributeError:
        return False
    return isinstance(cache, dict)


def _stores(obj: Any) -> list[Any]:
    return [obj._cache]


def agent_profile(obj: Any) -> Any:
    """The profile of a CrewAI ``CacheHandler``-shaped object, else None."""
    if not looks_like_cache_handler(obj):
        return None
    from memexport.kinds.agent import AgentProfile

    return AgentProfile(stores=_stores, source=f"crewai-shaped {type(obj).__qualname__}")
