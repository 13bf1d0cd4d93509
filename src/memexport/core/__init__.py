"""The in-process model: event counters, metric definitions, the registry of components."""
