"""The ``/metrics`` HTTP server: bounded connections and time, TLS off the accept loop, auth.

prometheus_client's own server does the TLS handshake in its accept loop with no timeout (one
idle TCP connection blocks every scrape) and gives every connection a thread for as long as
the client keeps it open (200 idle sockets, 202 threads). This one is the same WSGI server
with three bounds:

* at most ``max_connections`` connections at once; a new one over the limit closes the oldest
  connection that has not finished sending its request (an idle or slow client, never a scrape
  being answered), or is itself closed when none can go;
* ``timeout`` seconds for a connection to complete its TLS handshake and request headers,
  enforced by the accept loop (a slowloris client sending a byte a second is cut off), and as
  the socket timeout of every read and write;
* the TLS handshake happens on the connection's own thread, never in the accept loop.

Optional basic auth and bearer-token checks answer ``401`` before the metrics are read.
Nothing a client sends is logged; a failing request is dropped silently, and problems of the
server itself are logged once, by type.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import logging
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterable
from socketserver import ThreadingMixIn
from typing import Any, cast
from wsgiref.simple_server import ServerHandler, WSGIRequestHandler, WSGIServer

from memexport.core.forks import after_fork_in_child

__all__ = [
    "ASGIMetricsApp",
    "MetricsHTTPServer",
    "auth_checker",
    "require_auth",
    "routed",
    "tls_context",
    "validate_auth",
]

log = logging.getLogger("memexport")

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

_logged: set[str] = set()
_logged_lock = threading.Lock()


@after_fork_in_child
def _reset_lock() -> None:
    global _logged_lock
    _logged_lock = threading.Lock()


def _log_once(key: str, message: str, *args: object) -> None:
    with _logged_lock:
        if key in _logged:
            return
        _logged.add(key)
    log.warning(message, *args)


class _NullStream:
    """Where wsgiref would print tracebacks (which may quote user data): nowhere."""

    def write(self, data: str) -> int:
        return len(data)

    def flush(self) -> None:
        pass


class _QuietServerHandler(ServerHandler):
    def log_exception(self, exc_info: Any) -> None:
        _log_once(f"app:{exc_info[0].__name__}", "memexport: /metrics failed to answer (%s); "
                  "logged once", exc_info[0].__name__)


class _Handler(WSGIRequestHandler):
    """One request per connection, nothing logged, the request marked read once parsed."""

    server: MetricsHTTPServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def get_stderr(self) -> Any:
        return _NullStream()

    def parse_request(self) -> bool:
        ok = bool(super().parse_request())
        self.server._request_read(self.connection)
        return ok

    def handle(self) -> None:
        self.raw_requestline = self.rfile.readline(65537)
        if len(self.raw_requestline) > 65536:
            self.requestline = self.request_version = self.command = ""
            self.send_error(414)
            return
        if not self.parse_request():
            return
        handler = _QuietServerHandler(self.rfile, cast(Any, self.wfile), self.get_stderr(),
                                      self.get_environ(), multithread=False)
        handler.request_handler = self  # type: ignore[attr-defined]
        app = self.server.get_app()
        if app is not None:
            handler.run(app)


class _Conn:
    __slots__ = ("reading", "since", "sock")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.since = time.monotonic()
        self.reading = True


def _cut(sock: socket.socket) -> None:
    """Wake a thread blocked on ``sock`` (plain or TLS) and make it give up."""
    try:
        socket.socket.shutdown(sock, socket.SHUT_RDWR)
    except OSError:
        pass


class MetricsHTTPServer(ThreadingMixIn, WSGIServer):
    """A threading WSGI server with a connection limit, a request deadline and TLS per thread."""

    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True
    request_queue_size = 128  # the listen backlog (socketserver's 5 stalls connect bursts)

    def __init__(self, address: tuple[str, int], family: socket.AddressFamily,
                 app: WSGIApp, *, ssl_context: ssl.SSLContext | None = None,
                 max_connections: int = 16, timeout: float = 10.0) -> None:
        self.address_family = family
        self.ssl_context = ssl_context
        self.max_connections = max_connections
        self.request_timeout = timeout
        self._conns: dict[int, _Conn] = {}
        self._conns_lock = threading.Lock()
        self.rejected = 0  # connections closed at once because the limit was reached
        self.evicted = 0  # connections closed to make room, or past their deadline
        super().__init__(address, _Handler)
        self.set_app(app)

    def server_bind(self) -> None:
        # HTTPServer.server_bind looks up the host's FQDN (a DNS query); not needed here.
        import socketserver

        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)
        self.setup_environ()

    # -- connections ---------------------------------------------------------------------

    def process_request(self, request: Any, client_address: Any) -> None:
        """In the accept loop: admit the connection (making room if needed), start its
        thread."""
        victim: _Conn | None = None
        with self._conns_lock:
            if len(self._conns) >= self.max_connections:
                waiting = [c for c in self._conns.values() if c.reading]
                if not waiting:
                    self.rejected += 1
                    victim = None
                    admit = False
                else:
                    victim = min(waiting, key=lambda c: c.since)
                    victim.reading = False  # cut once
                    self.evicted += 1
                    admit = True
            else:
                admit = True
            if admit:
                self._conns[id(request)] = _Conn(request)
        if victim is not None:
            _cut(victim.sock)
        if not admit:
            _log_once("limit", "memexport: /metrics has %d connections open (max_connections); "
                      "closing new ones until they finish; logged once", self.max_connections)
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except Exception:  # no thread could be started
            self._forget(request)
            self.shutdown_request(request)

    def finish_request(self, request: Any, client_address: Any) -> None:
        """On the connection's thread: socket timeout, TLS handshake, one request."""
        conn = request
        try:
            request.settimeout(self.request_timeout)
            if self.ssl_context is not None:
                conn = self.ssl_context.wrap_socket(request, server_side=True,
                                                    do_handshake_on_connect=False)
                with self._conns_lock:
                    record = self._conns.get(id(request))
                    if record is not None:
                        record.sock = conn
                conn.do_handshake()
            self.RequestHandlerClass(conn, client_address, cast(Any, self))
        finally:
            if conn is not request:
                try:
                    conn.close()
                except OSError:
                    pass

    def _request_read(self, sock: Any) -> None:
        """The handler parsed the request: this connection is now answering, not waiting."""
        with self._conns_lock:
            for record in self._conns.values():
                if record.sock is sock:
                    record.reading = False
                    break

    def _forget(self, request: Any) -> None:
        with self._conns_lock:
            self._conns.pop(id(request), None)

    def shutdown_request(self, request: Any) -> None:
        self._forget(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that went away, timed out or failed its handshake: nothing to report."""

    def service_actions(self) -> None:
        """Every poll of the accept loop (0.5 s): cut connections past their deadline."""
        late: list[_Conn] = []
        now = time.monotonic()
        with self._conns_lock:
            for record in self._conns.values():
                if record.reading and now - record.since > self.request_timeout:
                    record.reading = False
                    late.append(record)
            self.evicted += len(late)
        for record in late:
            _cut(record.sock)

    def connections(self) -> int:
        """Connections open now."""
        with self._conns_lock:
            return len(self._conns)

    def server_close(self) -> None:
        super().server_close()
        with self._conns_lock:
            open_ = list(self._conns.values())
        for record in open_:
            _cut(record.sock)


# -- TLS and auth ------------------------------------------------------------------------


def tls_context(certfile: str, keyfile: str | None, protocol: int, cafile: str | None,
                capath: str | None, client_auth_required: bool,
                min_version: ssl.TLSVersion | None,
                max_version: ssl.TLSVersion | None) -> ssl.SSLContext:
    """The server's TLS context, as prometheus_client builds it from the same arguments."""
    ctx = ssl.SSLContext(protocol)
    if cafile is not None or capath is not None:
        ctx.load_verify_locations(cafile, capath)
    else:
        ctx.load_default_certs(purpose=ssl.Purpose.CLIENT_AUTH)
    ctx.verify_mode = ssl.CERT_REQUIRED if client_auth_required else ssl.CERT_NONE
    if min_version is not None:
        ctx.minimum_version = min_version
    if max_version is not None:
        ctx.maximum_version = max_version
    ctx.load_cert_chain(certfile=certfile, keyfile=keyfile)
    return ctx


def validate_auth(basic_auth: object, bearer_token: object) -> None:
    """ValueError for unusable credentials; they are never echoed in the error text."""
    if basic_auth is not None:
        if (not isinstance(basic_auth, tuple | list) or len(basic_auth) != 2
                or not all(isinstance(x, str) for x in basic_auth)):
            raise ValueError("basic_auth must be a (username, password) pair of str")
        user, password = basic_auth
        if not user or ":" in user or not password:
            raise ValueError("basic_auth needs a non-empty username without ':' and a "
                             "non-empty password")
    if bearer_token is not None and (not isinstance(bearer_token, str) or not bearer_token
                                     or any(c.isspace() for c in bearer_token)):
        raise ValueError("bearer_token must be a non-empty str without whitespace")


def _digest(value: str) -> bytes:
    import hashlib

    return hashlib.sha256(value.encode("utf-8", "surrogateescape")).digest()


def auth_checker(basic_auth: tuple[str, str] | None, bearer_token: str | None
                 ) -> tuple[Callable[[str], bool], str]:
    """A check of one ``Authorization`` header value (constant-time comparisons of digests)
    and the ``WWW-Authenticate`` challenge to answer a failed one with."""
    user_d = _digest(basic_auth[0]) if basic_auth else None
    pass_d = _digest(basic_auth[1]) if basic_auth else None
    token_d = _digest(bearer_token) if bearer_token else None
    challenge = 'Basic realm="memexport"' if basic_auth else 'Bearer realm="memexport"'

    def authorized(header: str) -> bool:
        scheme, _, value = header.strip().partition(" ")
        scheme = scheme.lower()
        value = value.strip()
        if scheme == "basic" and user_d is not None and pass_d is not None:
            try:
                decoded = base64.b64decode(value, validate=True).decode("utf-8")
            except (binascii.Error, UnicodeDecodeError):
                return False
            user, sep, password = decoded.partition(":")
            ok_user = hmac.compare_digest(_digest(user), user_d)
            ok_pass = hmac.compare_digest(_digest(password), pass_d)
            return bool(sep) and ok_user and ok_pass
        if scheme == "bearer" and token_d is not None:
            return hmac.compare_digest(_digest(value), token_d)
        return False

    return authorized, challenge


_DENIED = b"401 Unauthorized\n"


def require_auth(app: WSGIApp, basic_auth: tuple[str, str] | None,
                 bearer_token: str | None) -> WSGIApp:
    """Wrap a WSGI app: a request needs ``Authorization: Basic`` with these credentials or
    ``Authorization: Bearer`` with this token (either, when both are set), else ``401``."""
    authorized, challenge = auth_checker(basic_auth, bearer_token)

    def auth_app(environ: dict[str, Any], start_response: Callable[..., Any]
                 ) -> Iterable[bytes]:
        if authorized(str(environ.get("HTTP_AUTHORIZATION", ""))):
            return app(environ, start_response)
        start_response("401 Unauthorized", [("Content-Type", "text/plain; charset=utf-8"),
                                            ("Content-Length", str(len(_DENIED))),
                                            ("WWW-Authenticate", challenge)])
        return [_DENIED]

    return auth_app


def routed(base: WSGIApp, app: WSGIApp, owns: Callable[[str], bool]) -> WSGIApp:
    """A WSGI app sending the requests whose path ``owns`` accepts to ``app``, the others to
    ``base`` (the actions receiver beside ``/metrics``, each with its own credentials)."""

    def route(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if owns(str(environ.get("PATH_INFO", ""))):
            return app(environ, start_response)
        return base(environ, start_response)

    return route


class ASGIMetricsApp:
    """An ASGI app object (not a function, so Starlette's ``Route`` mounts it as an app,
    with no redirect), optionally behind the same auth check."""

    def __init__(self, app: Callable[..., Any], basic_auth: tuple[str, str] | None = None,
                 bearer_token: str | None = None) -> None:
        self._app = app
        self._check = (auth_checker(basic_auth, bearer_token)
                       if basic_auth is not None or bearer_token is not None else None)

    async def __call__(self, scope: dict[str, Any], receive: Callable[..., Any],
                       send: Callable[..., Any]) -> None:
        if self._check is not None and scope.get("type") == "http":
            authorized, challenge = self._check
            header = next((v for k, v in scope.get("headers", ()) if k == b"authorization"),
                          b"")
            if not authorized(header.decode("latin-1")):
                await send({"type": "http.response.start", "status": 401,
                            "headers": [(b"content-type", b"text/plain; charset=utf-8"),
                                        (b"content-length", str(len(_DENIED)).encode()),
                                        (b"www-authenticate", challenge.encode())]})
                await send({"type": "http.response.body", "body": _DENIED})
                return
        await self._app(scope, receive, send)
