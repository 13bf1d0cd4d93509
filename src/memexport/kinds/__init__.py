"""The component kinds: cache, pool, conversation, agent, cleanup (one module each)."""
