"""Third-party integrations: each imported lazily, active only when its library is importable."""
