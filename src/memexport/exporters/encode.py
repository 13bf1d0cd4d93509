"""Answering a scrape: prometheus_client's content negotiation, memexport's part written by
``memexport.exporters.text``, the rest of the prometheus_client registry by its own encoder.

For the two formats scrapers ask for (Prometheus text 0.0.4 and OpenMetrics 1.0.0) the
registry's components are written straight to text; any other format, escaping or a
``?name[]=`` filter goes through prometheus_client alone, as before. The WSGI and ASGI apps
mirror prometheus_client's (OPTIONS, 405, favicon, gzip) around that encoder.
"""

from __future__ import annotations

import contextlib
import functools
import gzip
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Protocol
from urllib.parse import parse_qs

from prometheus_client.exposition import choose_encoder, generate_latest, gzip_accepted
from prometheus_client.openmetrics import exposition as om
from prometheus_client.registry import CollectorRegistry

from memexport.core.registry import Registry
from memexport.exporters.text import render

__all__ = ["Skippable", "asgi_app", "encode", "wsgi_app"]


class Skippable(Protocol):
    """memexport's collector as this module needs it."""

    registry: Registry
    skip: threading.local
    scrapes: int


Finder = Callable[[CollectorRegistry], "Skippable | None"]


def _fast_format(encoder: Callable[..., bytes]) -> bool | None:
    """False for text 0.0.4, True for OpenMetrics 1.0.0 with default escaping, else None."""
    if encoder is generate_latest:
        return False
    if (isinstance(encoder, functools.partial) and encoder.func is om.generate_latest
            and encoder.keywords == {"escaping": om.UNDERSCORES, "version": "1.0.0"}):
        return True
    return None


@contextlib.contextmanager
def _skipped(ours: Skippable) -> Iterator[None]:
    ours.skip.active = True
    try:
        yield
    finally:
        ours.skip.active = False


def encode(registry: CollectorRegistry, accept: str, names: Iterable[str] = (),
           find: Finder | None = None) -> tuple[bytes, str]:
    """The exposition of ``registry`` for an ``Accept`` header: (body, content type)."""
    encoder, content_type = choose_encoder(accept)
    names = list(names)
    if names:
        return encoder(registry.restricted_registry(names)), content_type
    ours = find(registry) if find is not None else None
    openmetrics = _fast_format(encoder)
    if ours is None or openmetrics is None:
        return encoder(registry), content_type
    ours.scrapes += 1
    text = render(ours.registry, openmetrics)
    with _skipped(ours):
        rest = encoder(registry)
    return text.encode() + rest, content_type


def _bake(registry: CollectorRegistry, find: Finder, accept: str | None,
          accept_encoding: str | None, query: str,
          disable_compression: bool) -> tuple[str, list[tuple[str, str]], bytes]:
    params = parse_qs(query)
    body, content_type = encode(registry, accept or "", params.get("name[]", ()), find)
    headers = [("Content-Type", content_type)]
    if not disable_compression and gzip_accepted(accept_encoding or ""):
        body = gzip.compress(body)
        headers.append(("Content-Encoding", "gzip"))
    return "200 OK", headers, body


def _other(method: str, path: str) -> tuple[str, list[tuple[str, str]], bytes] | None:
    if method == "OPTIONS":
        return "200 OK", [("Allow", "OPTIONS,GET")], b""
    if method != "GET":
        status = "405 Method Not Allowed"
        return status, [("Allow", "OPTIONS,GET")], (
            f"# HTTP {status}: {method}; use OPTIONS or GET\n".encode())
    if path == "/favicon.ico":
        return "200 OK", [], b""
    return None


def wsgi_app(registry: CollectorRegistry, find: Finder,
             disable_compression: bool = False) -> Callable[..., Any]:
    """prometheus_client's ``make_wsgi_app`` with memexport's encoder."""

    def metrics_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        answer = _other(environ["REQUEST_METHOD"], environ.get("PATH_INFO", ""))
        if answer is None:
            answer = _bake(registry, find, environ.get("HTTP_ACCEPT"),
                           environ.get("HTTP_ACCEPT_ENCODING"), environ.get("QUERY_STRING", ""),
                           disable_compression)
        status, headers, body = answer
        start_response(status, headers)
        return [body]

    return metrics_app


def asgi_app(registry: CollectorRegistry, find: Finder,
             disable_compression: bool = False) -> Callable[..., Any]:
    """prometheus_client's ``make_asgi_app`` with memexport's encoder."""

    async def metrics_app(scope: dict[str, Any], receive: Callable[..., Any],
                          send: Callable[..., Any]) -> None:
        assert scope.get("type") == "http"
        headers = scope.get("headers") or []

        def header(name: str) -> str:
            return ",".join(v.decode("utf8") for k, v in headers
                            if k.decode("utf8").lower() == name)

        status, out_headers, body = _bake(
            registry, find, header("accept"), header("accept-encoding"),
            scope.get("query_string", b"").decode("utf8"), disable_compression)
        payload = await receive()
        if payload.get("type") == "http.request":
            await send({"type": "http.response.start", "status": int(status.split(" ")[0]),
                        "headers": [(k.encode("utf8"), v.encode("utf8"))
                                    for k, v in out_headers]})
            await send({"type": "http.response.body", "body": body})

    return metrics_app
