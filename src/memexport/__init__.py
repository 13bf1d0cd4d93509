"""memexport: memory metrics for long-running multi-agent Python apps.

Wrap the objects that hold memory, start the exporter, and let Prometheus alert rules and
Grafana dashboards (shipped beside this package) watch them.

Each public name is imported on first use (PEP 562), so ``import memexport`` costs little and
an app that never calls ``use_opentelemetry`` or instruments a pool never loads those parts.
"""

import importlib as _importlib
import typing as _typing

if _typing.TYPE_CHECKING:  # the public API as type checkers see it
    from memexport.actions import action, start_actions
    from memexport.core.budgets import budget
    from memexport.core.config import configure
    from memexport.core.registry import REGISTRY
    from memexport.exporters.otel import use_opentelemetry
    from memexport.exporters.prometheus import (
        MetricsServer,
        make_asgi_app,
        make_wsgi_app,
        start_http_server,
    )
    from memexport.instrument.kind import uninstrument
    from memexport.kinds.agent import agent
    from memexport.kinds.cache import cache
    from memexport.kinds.cleanup import cleanup
    from memexport.kinds.conversation import conversation
    from memexport.kinds.pool import pool
    from memexport.process.collector import start_collector, stop_collector

__all__ = [
    "REGISTRY",
    "MetricsServer",
    "action",
    "agent",
    "budget",
    "cache",
    "cleanup",
    "configure",
    "conversation",
    "make_asgi_app",
    "make_wsgi_app",
    "pool",
    "start_actions",
    "start_collector",
    "start_http_server",
    "stop_collector",
    "uninstrument",
    "use_opentelemetry",
]
__version__ = "0.1.0"

#: Where each public name lives.
_HOMES = {
    "REGISTRY": "memexport.core.registry",
    "MetricsServer": "memexport.exporters.prometheus",
    "action": "memexport.actions",
    "agent": "memexport.kinds.agent",
    "budget": "memexport.core.budgets",
    "cache": "memexport.kinds.cache",
    "cleanup": "memexport.kinds.cleanup",
    "configure": "memexport.core.config",
    "conversation": "memexport.kinds.conversation",
    "make_asgi_app": "memexport.exporters.prometheus",
    "make_wsgi_app": "memexport.exporters.prometheus",
    "pool": "memexport.kinds.pool",
    "start_actions": "memexport.actions",
    "start_collector": "memexport.process.collector",
    "start_http_server": "memexport.exporters.prometheus",
    "stop_collector": "memexport.process.collector",
    "uninstrument": "memexport.instrument.kind",
    "use_opentelemetry": "memexport.exporters.otel",
}


def __getattr__(name: str) -> _typing.Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'memexport' has no attribute {name!r}")
    module = _importlib.import_module(home)
    try:
        value = getattr(module, name)
    except AttributeError:
        if not getattr(getattr(module, "__spec__", None), "_initializing", False):
            raise
        # This thread is importing it: a signal handler run during the first call.
        from memexport.instrument.adapters import AdapterLoading

        raise AdapterLoading(f"memexport.{name} was asked for while this thread imports it (a "
                             "signal handler during the first call?): use it once before "
                             "installing the handler") from None
    globals()[name] = value  # later lookups are plain attribute reads
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
