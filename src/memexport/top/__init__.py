"""``memexport top``: a live terminal view of one or more memexport /metrics endpoints."""

from memexport.top.app import main

__all__ = ["main"]
