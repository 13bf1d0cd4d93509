"""``memexport demo``: a simulated long-running multi-agent app, instrumented with memexport."""

from memexport.demo.app import SCENARIOS, main, run

__all__ = ["SCENARIOS", "main", "run"]
