"""The receiver's WSGI app: the Alertmanager webhook, the action status and the evidence index.

Routes under ``prefix`` (default ``/actions``), every one behind the receiver's credentials:

- ``POST {prefix}/webhook``: an Alertmanager v4 payload. ``401`` without the credentials,
  ``405`` for another method, ``415`` unless ``Content-Type: application/json``, ``413`` past
  ``MAX_BODY_BYTES``, ``400`` for a body that is not a valid payload; else ``200`` with what
  was matched (actions run later, on the action thread). Each answer is counted in
  ``memexport_webhook_requests_total{result}``.
- ``GET {prefix}``: the actions, their limits and their last run (JSON).
- ``GET {prefix}/evidence``: the evidence files (JSON); ``GET {prefix}/evidence/<file>`` one.

Nothing a client sends is logged or echoed; a failure inside the app answers ``500`` and is
counted (``result="error"``), never raised into the server.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable
from typing import Any

from memexport.actions.metrics import ActionMetrics
from memexport.actions.payload import MAX_BODY_BYTES, Notification, PayloadError, parse
from memexport.actions.store import EvidenceStore
from memexport.exporters.server import auth_checker

__all__ = ["DEFAULT_PREFIX", "ReceiverApp"]

log = logging.getLogger("memexport")

DEFAULT_PREFIX = "/actions"
_CHUNK = 64 * 1024

StartResponse = Callable[..., Any]


def _reply(start_response: StartResponse, status: str, body: Any,
           headers: Iterable[tuple[str, str]] = (), content_type: str = "application/json"
           ) -> list[bytes]:
    data = body if isinstance(body, bytes) else (json.dumps(body, sort_keys=True) + "\n").encode()
    start_response(status, [("Content-Type", content_type), ("Content-Length", str(len(data))),
                            ("Cache-Control", "no-store"), *headers])
    return [data]


class ReceiverApp:
    """WSGI app of the receiver; ``handle(notification, relayed, authorization)`` queues the
    matching runs (and relays what names another replica)."""

    def __init__(self, handle: Callable[[Notification, bool, str], dict[str, Any]],
                 status: Callable[[], dict[str, Any]], metrics: ActionMetrics, *,
                 store: EvidenceStore | None = None, prefix: str = DEFAULT_PREFIX,
                 basic_auth: tuple[str, str] | None = None,
                 bearer_token: str | None = None) -> None:
        self.prefix = "/" + prefix.strip("/")
        self._handle = handle
        self._status = status
        self._metrics = metrics
        self._store = store
        self._auth = (auth_checker(basic_auth, bearer_token)
                      if basic_auth is not None or bearer_token is not None else None)
        self._logged = False

    def owns(self, path: str) -> bool:
        """Whether ``path`` is one of the receiver's (for mounting beside ``/metrics``)."""
        return path == self.prefix or path.startswith(self.prefix + "/")

    def __call__(self, environ: dict[str, Any], start_response: StartResponse
                 ) -> Iterable[bytes]:
        path = str(environ.get("PATH_INFO", "") or "/")
        webhook = path == self.prefix + "/webhook"
        try:
            if self._auth is not None:
                authorized, challenge = self._auth
                if not authorized(str(environ.get("HTTP_AUTHORIZATION", ""))):
                    if webhook:
                        self._metrics.request("unauthorized")
                    return _reply(start_response, "401 Unauthorized",
                                  {"error": "unauthorized"}, [("WWW-Authenticate", challenge)])
            if webhook:
                return self._webhook(environ, start_response)
            if environ.get("REQUEST_METHOD") not in ("GET", "HEAD"):
                return _reply(start_response, "405 Method Not Allowed",
                              {"error": "method not allowed"}, [("Allow", "GET")])
            if path in (self.prefix, self.prefix + "/"):
                return _reply(start_response, "200 OK", self._status())
            if path == self.prefix + "/evidence":
                files = self._store.index() if self._store is not None else []
                return _reply(start_response, "200 OK", {"files": files})
            if path.startswith(self.prefix + "/evidence/") and self._store is not None:
                return self._file(path.rsplit("/", 1)[1], start_response)
            return _reply(start_response, "404 Not Found", {"error": "not found"})
        except Exception as exc:  # never into the server: counted, logged once by type
            if webhook:
                self._metrics.request("error")
            if not self._logged:
                self._logged = True
                log.warning("memexport: the actions receiver failed to answer (%s); "
                            "logged once", type(exc).__name__)
            return _reply(start_response, "500 Internal Server Error", {"error": "internal"})

    def _refuse(self, start_response: StartResponse, result: str, status: str,
                message: str, headers: Iterable[tuple[str, str]] = ()) -> list[bytes]:
        self._metrics.request(result)
        return _reply(start_response, status, {"error": message}, headers)

    def _webhook(self, environ: dict[str, Any], start_response: StartResponse) -> list[bytes]:
        if environ.get("REQUEST_METHOD") != "POST":
            return self._refuse(start_response, "bad_method", "405 Method Not Allowed",
                                "POST an Alertmanager webhook payload", [("Allow", "POST")])
        ctype = str(environ.get("CONTENT_TYPE", "")).split(";")[0].strip().lower()
        if ctype != "application/json":
            return self._refuse(start_response, "unsupported_media_type",
                                "415 Unsupported Media Type", "Content-Type must be "
                                "application/json")
        try:
            length = int(str(environ.get("CONTENT_LENGTH") or "-1"))
        except ValueError:
            length = -1
        if length < 0:
            return self._refuse(start_response, "bad_payload", "411 Length Required",
                                "Content-Length is required")
        if length > MAX_BODY_BYTES:
            return self._refuse(start_response, "too_large", "413 Content Too Large",
                                f"body over {MAX_BODY_BYTES} bytes")
        try:
            body = _read(environ["wsgi.input"], length)
        except OSError:  # the client went away or stalled past the socket timeout
            return self._refuse(start_response, "bad_payload", "400 Bad Request",
                                "body not received")
        if len(body) != length:
            return self._refuse(start_response, "bad_payload", "400 Bad Request",
                                "body shorter than Content-Length")
        try:
            notification = parse(body)
        except PayloadError as exc:
            return self._refuse(start_response, exc.reason, "400 Bad Request", str(exc))
        relayed = bool(environ.get("HTTP_X_MEMEXPORT_RELAYED"))
        answer = self._handle(notification, relayed, str(environ.get("HTTP_AUTHORIZATION", "")))
        self._metrics.request("accepted")
        return _reply(start_response, "200 OK", answer)

    def _file(self, name: str, start_response: StartResponse) -> list[bytes]:
        assert self._store is not None
        path = self._store.path_of(name)
        if path is None:
            return _reply(start_response, "404 Not Found", {"error": "no such evidence file"})
        data = path.read_bytes()
        ctype = "application/json" if name.endswith(".json") else "application/octet-stream"
        return _reply(start_response, "200 OK", data, content_type=ctype,
                      headers=[("Content-Disposition", f'attachment; filename="{name}"')])


def _read(stream: Any, length: int) -> bytes:
    chunks: list[bytes] = []
    left = length
    while left > 0:
        chunk = stream.read(min(left, _CHUNK))
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)
