"""The receiver as an ASGI app, for FastAPI, Starlette and other ASGI servers.

It reads the request body (at most ``MAX_BODY_BYTES``; a longer one is answered ``413``
without reading more), builds the WSGI environ the receiver understands and runs the receiver
on a worker thread (``asyncio.to_thread``): serving an evidence file never blocks the event
loop. Mount it as a route whose path starts with the receiver's prefix, e.g.
``app.mount("/actions", service.asgi_app)`` or a ``Route("/actions/{rest:path}", ...)``.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import Callable
from typing import Any

from memexport.actions.payload import MAX_BODY_BYTES
from memexport.actions.receiver import ReceiverApp

__all__ = ["ASGIReceiver"]


class ASGIReceiver:
    """An ASGI app object around a ``ReceiverApp``."""

    def __init__(self, app: ReceiverApp) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Callable[..., Any],
                       send: Callable[..., Any]) -> None:
        if scope.get("type") != "http":
            return
        body = bytearray()
        while True:
            message = await receive()
            body += message.get("body", b"")
            if len(body) > MAX_BODY_BYTES or not message.get("more_body"):
                break
        path = str(scope.get("path", ""))  # the full path (Starlette keeps it when mounted)
        if not self.app.owns(path):
            full = str(scope.get("root_path", "")) + path
            path = full if self.app.owns(full) else self.app.prefix + path
        environ: dict[str, Any] = {
            "REQUEST_METHOD": scope.get("method", "GET"),
            "PATH_INFO": path,
            "QUERY_STRING": scope.get("query_string", b"").decode("latin-1"),
            "wsgi.input": io.BytesIO(bytes(body)),
        }
        for name, value in scope.get("headers", ()):
            key = name.decode("latin-1").upper().replace("-", "_")
            text = value.decode("latin-1")
            if key == "CONTENT_TYPE":
                environ["CONTENT_TYPE"] = text
            elif key == "CONTENT_LENGTH":
                environ["CONTENT_LENGTH"] = text
            else:
                environ[f"HTTP_{key}"] = text
        if len(body) > MAX_BODY_BYTES:
            environ["CONTENT_LENGTH"] = str(len(body))
        reply: dict[str, Any] = {}

        def start_response(status: str, headers: list[tuple[str, str]]) -> None:
            reply["status"], reply["headers"] = int(status.split()[0]), headers

        chunks = await asyncio.to_thread(lambda: list(self.app(environ, start_response)))
        await send({"type": "http.response.start", "status": reply["status"],
                    "headers": [(k.lower().encode(), v.encode("latin-1"))
                                for k, v in reply["headers"]]})
        await send({"type": "http.response.body", "body": b"".join(chunks)})
