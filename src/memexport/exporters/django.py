"""A Django view serving memexport's metrics: ``path("metrics", make_view())`` in a URLconf.

Django is imported when a request is answered, never by memexport itself.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

import prometheus_client
from prometheus_client.registry import CollectorRegistry

from memexport.exporters.encode import encode
from memexport.exporters.prometheus import _start_collector, collector_for, register_collector
from memexport.exporters.server import auth_checker, validate_auth

__all__ = ["make_view"]


def make_view(
    registry: CollectorRegistry = prometheus_client.REGISTRY,
    *,
    collector: bool = True,
    collector_interval: float | None = None,
    basic_auth: tuple[str, str] | None = None,
    bearer_token: str | None = None,
) -> Callable[[Any], Any]:
    """A Django view answering with the exposition (OpenMetrics when the scraper asks for it,
    ``?name[]=`` filters as in prometheus_client); starts the process collector as
    ``start_http_server`` does, unless ``collector=False``."""
    validate_auth(basic_auth, bearer_token)
    register_collector(registry)
    if collector:
        _start_collector(collector_interval)
    check = (auth_checker(basic_auth, bearer_token)
             if basic_auth is not None or bearer_token is not None else None)

    def metrics(request: Any) -> Any:
        http = importlib.import_module("django.http")
        if check is not None:
            authorized, challenge = check
            if not authorized(str(request.headers.get("Authorization", ""))):
                denied = http.HttpResponse(b"401 Unauthorized\n", status=401,
                                           content_type="text/plain; charset=utf-8")
                denied["WWW-Authenticate"] = challenge
                return denied
        body, content_type = encode(registry, str(request.headers.get("Accept", "")),
                                    request.GET.getlist("name[]"), collector_for)
        return http.HttpResponse(body, content_type=content_type)

    return metrics
