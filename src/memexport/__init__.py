"""memexport: memory metrics for long-running multi-agent Python apps.

Wrap the objects that hold memory, start the exporter, and let Prometheus alert rules and
Grafana dashboards (shipped beside this package) watch them.
"""

from memexport.agent import agent
from memexport.budget import budget
from memexport.cache import cache
from memexport.cleanup import cleanup
from memexport.config import configure
from memexport.conversation import conversation
from memexport.otel import use_opentelemetry  # needs opentelemetry only when called
from memexport.pool import pool
from memexport.process import start_collector, stop_collector
from memexport.prometheus import MetricsServer, make_asgi_app, make_wsgi_app, start_http_server
from memexport.registry import REGISTRY

__all__ = [
    "REGISTRY",
    "MetricsServer",
    "agent",
    "budget",
    "cache",
    "cleanup",
    "configure",
    "conversation",
    "make_asgi_app",
    "make_wsgi_app",
    "pool",
    "start_collector",
    "start_http_server",
    "stop_collector",
    "use_opentelemetry",
]
__version__ = "0.1.0"
