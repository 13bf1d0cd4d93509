"""``start_actions``: the receiver on the metrics server or its own port, and what it runs.

It puts together the receiver app, the process identity, the dispatcher, the evidence store
and the metrics, and serves them either beside ``/metrics`` (``server=``, sharing its TLS and
connection limits) or on a port of its own (``port=``, with its own TLS). Loopback by
default; credentials are required to listen anywhere else.
"""

from __future__ import annotations

import logging
import os
import ssl
import threading
from collections.abc import Iterable, Mapping
from typing import Any

from memexport.actions.asgi import ASGIReceiver
from memexport.actions.catalog import ACTIONS, Action, ActionSet
from memexport.actions.config import Settings, load_settings
from memexport.actions.evidence import Evidence
from memexport.actions.identity import Identity
from memexport.actions.inbox import Inbox, inbox_root
from memexport.actions.metrics import ActionMetrics
from memexport.actions.payload import Alert, Notification
from memexport.actions.receiver import DEFAULT_PREFIX, ReceiverApp
from memexport.actions.relay import Relay, group_by_instance
from memexport.actions.runner import Dispatcher
from memexport.actions.store import EvidenceStore
from memexport.core.registry import REGISTRY, Registry
from memexport.exporters.prometheus import (
    DEFAULT_MAX_CONNECTIONS,
    DEFAULT_TIMEOUT,
    MetricsServer,
    _listen_address,
    _loopback,
    _port_from,
    _positive,
    _setting,
)
from memexport.exporters.server import MetricsHTTPServer, tls_context, validate_auth

__all__ = ["DEFAULT_ACTIONS_PORT", "ActionService", "start_actions"]

log = logging.getLogger("memexport")

DEFAULT_ACTIONS_PORT = 9465
#: Seconds after start before evidence actions take their first baseline.
PRIME_DELAY = 10.0


class ActionService:
    """A running receiver; ``close()`` stops it (and its own server, if it has one)."""

    def __init__(self, app: ReceiverApp, actions: ActionSet, identity: Identity,
                 metrics: ActionMetrics, dispatcher: Dispatcher, store: EvidenceStore | None,
                 registry: Registry) -> None:
        self.app = app
        self.actions = actions
        self.identity = identity
        self.metrics = metrics
        self.dispatcher = dispatcher
        self.store = store
        self.registry = registry
        self.url = ""
        self.relay: Relay | None = None
        self.inbox: Inbox | None = None
        self._server: MetricsHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._undo: Any = None
        self._prime: threading.Timer | None = None
        actions.on_add(metrics.declare)
        for act in actions.all():
            metrics.declare(act)
        if store is not None:
            metrics.evidence = store.usage
        registry.add_source("actions", metrics.families)

    # -- handling ----------------------------------------------------------------------------

    def handle(self, notification: Notification, relayed: bool = False,
               authorization: str = "") -> dict[str, Any]:
        """Match the notification's alerts that name this process and queue their runs;
        relay those naming another replica (when relaying is on)."""
        ours = []
        others = []
        for alert in notification.alerts:
            if self.identity.names_us(alert.labels):
                ours.append(alert)
            else:
                others.append(alert)
        relay = self.relay
        forwarded = 0
        if self.inbox is not None and not relayed:  # a sibling pre-fork worker's alerts
            others, forwarded = self._to_siblings(others)
        for instance, alerts in group_by_instance(others).items():
            if (relay is not None and not relayed and relay.accepts(instance)
                    and relay.forward(instance, alerts, authorization)):
                forwarded += len(alerts)
                for alert in alerts:
                    self.metrics.alert(alert.status, "relayed")
            else:
                for alert in alerts:
                    self.metrics.alert(alert.status, "other_process")
        matches = self.actions.matching(ours)
        matched = {id(a) for _, _, hits in matches for a in hits}
        for alert in ours:
            self.metrics.alert(alert.status, "matched" if id(alert) in matched else "unmatched")
        runs = []
        for act, status, hits in matches:
            skipped = self.dispatcher.submit(act, status, hits)
            runs.append({"action": act.name, "status": status, "alerts": len(hits),
                         "queued": skipped is None, **({"skipped": skipped} if skipped else {})})
        return {"alerts": len(notification.alerts), "for_this_process": len(ours),
                "relayed": forwarded, "runs": runs}

    def _to_siblings(self, alerts: list[Alert]) -> tuple[list[Alert], int]:
        """Post the alerts naming a sibling worker (our instance, its pid) to its inbox;
        the rest back, and how many were posted."""
        assert self.inbox is not None
        mine = str(os.getpid())
        by_pid: dict[str, list[Alert]] = {}
        rest = []
        for alert in alerts:
            pid = alert.labels.get("pid", "")
            if self.inbox.owns(pid) and self.identity.names_us({**alert.labels, "pid": mine}):
                by_pid.setdefault(pid, []).append(alert)
            else:
                rest.append(alert)
        posted = 0
        for pid, group in by_pid.items():
            if self.inbox.post(pid, group):
                posted += len(group)
                for alert in group:
                    self.metrics.alert(alert.status, "relayed")
            else:
                rest.extend(group)
        return rest, posted

    def status(self) -> dict[str, Any]:
        """The actions, their limits and last runs (``GET /actions``)."""
        acts = []
        for act in self.actions.all():
            lim = act.limits
            acts.append({
                "name": act.name, "alerts": sorted(act.match.alerts),
                "labels": {k: sorted(v) for k, v in act.match.labels.items()},
                "on": sorted(act.match.on), "max_runs": lim.max_runs, "window": lim.window,
                "cooldown": lim.cooldown, "timeout": lim.timeout, "running": act.limiter.busy,
                "last": act.last})
        out: dict[str, Any] = {"pid": os.getpid(), "dry_run": self.dispatcher.dry_run,
                               "actions": acts, "ports": sorted(self.identity.ports)}
        if self.store is not None:
            nbytes, files = self.store.usage()
            out["evidence"] = {"bytes": nbytes, "files": files,
                               "max_bytes": self.store.max_bytes}
        return out

    @property
    def asgi_app(self) -> ASGIReceiver:
        """The receiver as an ASGI app (mount it under ``prefix``; see ``asgi.py``)."""
        return ASGIReceiver(self.app)

    def wait_idle(self, completed: int, timeout: float = 30.0) -> bool:
        """Block until ``completed`` runs have ended in total (for tests)."""
        return self.dispatcher.wait_idle(completed, timeout)

    def close(self) -> None:
        self.actions.off_add(self.metrics.declare)
        if self._prime is not None:
            self._prime.cancel()
        if self._undo is not None:
            self._undo()
            self._undo = None
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            if self._thread is not None:
                self._thread.join(timeout=5)
            self._server = None
        self.dispatcher.close()
        if self.relay is not None:
            self.relay.close()
        if self.inbox is not None:
            self.inbox.close()
            self.inbox = None


def _store(settings: Settings) -> EvidenceStore | None:
    if settings.evidence_dir is None:
        return None
    return EvidenceStore(settings.evidence_dir, max_bytes=settings.evidence_max_bytes,
                         max_files=settings.evidence_max_files,
                         max_age=settings.evidence_max_age)


def start_actions(
    server: MetricsServer | None = None,
    *,
    port: int | None = None,
    addr: str | None = None,
    bearer_token: str | None = None,
    basic_auth: tuple[str, str] | None = None,
    certfile: str | None = None,
    keyfile: str | None = None,
    evidence_dir: str | os.PathLike[str] | None = None,
    job: str | None = None,
    instance: str | Iterable[str] | None = None,
    actions: Iterable[Action] = (),
    config: str | os.PathLike[str] | Mapping[str, Any] | None = None,
    action_set: ActionSet = ACTIONS,
    registry: Registry = REGISTRY,
    prefix: str = DEFAULT_PREFIX,
    dry_run: bool | None = None,
    serve: bool = True,
    relay_networks: Iterable[str] | None = None,
    relay_ssl_context: ssl.SSLContext | None = None,
    allow_unauthenticated: bool = False,
    max_connections: int = DEFAULT_MAX_CONNECTIONS,
    timeout: float = DEFAULT_TIMEOUT,
) -> ActionService:
    """Receive Alertmanager's webhook and run the matching actions (see docs/actions.md).

    With ``server`` (what ``start_http_server`` returned) the receiver answers under
    ``prefix`` on that server; otherwise on ``addr:port`` of its own (``MEMEXPORT_ACTIONS_ADDR``
    / ``MEMEXPORT_ACTIONS_PORT``, default 127.0.0.1:9465; TLS with ``certfile``).
    ``bearer_token`` (``MEMEXPORT_ACTIONS_TOKEN``) or ``basic_auth`` are required off
    loopback. ``evidence_dir`` (``MEMEXPORT_EVIDENCE_DIR``) is where evidence is written.
    ``job`` / ``instance`` say how alerts name this process (``MEMEXPORT_JOB`` /
    ``MEMEXPORT_INSTANCE``; by default the instance's port and a local host are enough).
    ``actions`` are added to ``action_set`` (the process-wide ``ACTIONS``, where
    ``@memexport.action`` registers); ``config`` (a mapping, or a JSON/TOML/YAML file, also
    ``MEMEXPORT_ACTIONS_CONFIG``) adds more and sets the above. ``dry_run`` matches and counts
    but runs nothing. ``serve=False`` starts no server: mount ``service.app`` (WSGI) in an
    app of your own, under ``prefix``. ``relay_networks`` (the pod network, ``["10.0.0.0/8"]``)
    forwards alerts naming another replica on the same port to that replica's receiver
    (``relay.py``; ``relay_ssl_context`` to verify its certificate over https).
    """
    settings = load_settings(config, action_set)
    for act in actions:
        action_set.add(act, replace=True)
    token = bearer_token if bearer_token is not None else (
        settings.bearer_token or os.environ.get("MEMEXPORT_ACTIONS_TOKEN") or None)
    validate_auth(basic_auth, token)
    _positive(max_connections, "max_connections", int)
    _positive(timeout, "timeout")
    if evidence_dir is not None:
        settings.evidence_dir = os.fspath(evidence_dir)
    elif settings.evidence_dir is None and os.environ.get("MEMEXPORT_EVIDENCE_DIR"):
        settings.evidence_dir = os.environ["MEMEXPORT_EVIDENCE_DIR"]
    instances = ([instance] if isinstance(instance, str) else list(instance)
                 if instance is not None else settings.instances
                 or [i for i in os.environ.get("MEMEXPORT_INSTANCE", "").split(",") if i])
    identity = Identity(job=job or settings.job or os.environ.get("MEMEXPORT_JOB") or None,
                        instances=instances)
    authed = token is not None or basic_auth is not None
    store = _store(settings)
    metrics = ActionMetrics()
    dispatcher = Dispatcher(metrics, dry_run=bool(settings.dry_run if dry_run is None
                                                  else dry_run),
                            registry=registry, store=store)
    app = ReceiverApp(lambda n, r, a: service.handle(n, r, a), lambda: service.status(), metrics,
                      store=store, prefix=prefix, basic_auth=basic_auth, bearer_token=token)
    service = ActionService(app, action_set, identity, metrics, dispatcher, store, registry)
    if server is not None:
        if port is not None or addr is not None or certfile is not None:
            raise ValueError("pass server= or port=/addr=/certfile=, not both: on the metrics "
                             "server the receiver uses its address and TLS")
        if not authed and not allow_unauthenticated and not _loopback(server.addr):
            raise ValueError(f"the metrics server listens on {server.addr}, not loopback: "
                             "give the receiver bearer_token= (or MEMEXPORT_ACTIONS_TOKEN) or "
                             "basic_auth=")
        identity.add_port(server.port)
        service._undo = server.mount(app, app.owns)
        service.url = server.url.rsplit("/", 1)[0] + app.prefix
    else:
        if server is None:  # the metrics server is elsewhere: its port, if it is the usual
            raw, name = _setting(None, "MEMEXPORT_PORT", 9464)
            identity.add_port(_port_from(raw, name))
        if serve:
            _serve(service, app, identity, port, addr, certfile, keyfile, authed,
                   allow_unauthenticated, max_connections, float(timeout))
        elif port is not None or addr is not None or certfile is not None:
            raise ValueError("serve=False starts no server: port=, addr= and certfile= are "
                             "for the receiver's own port")
        else:
            service.url = app.prefix
    if relay_networks is not None:
        if not authed:
            service.close()
            raise ValueError("relaying needs bearer_token= or basic_auth=: the replicas "
                             "forward the credentials they were given")
        tls = (server.tls if server is not None else certfile is not None)
        try:
            service.relay = Relay(relay_networks, identity, metrics,
                                  scheme="https" if tls else "http", prefix=app.prefix,
                                  ssl_context=relay_ssl_context)
        except ValueError:
            service.close()
            raise
    root = inbox_root() if identity.multiprocess else None
    if root is not None:
        service.inbox = Inbox(root, lambda n: service.handle(n, relayed=True), metrics.relay)
    if store is None and any(isinstance(a.fn, Evidence) for a in action_set.all()):
        service.close()
        raise ValueError("evidence actions need evidence_dir= (or MEMEXPORT_EVIDENCE_DIR): "
                         "where to write what they capture")
    service._prime = _prime(action_set)
    log.info("memexport: actions receiver at %s/webhook (%s; %d actions%s)", service.url,
             "auth required" if authed else "no auth", len(action_set.all()),
             ", dry run" if dispatcher.dry_run else "")
    return service


def _prime(action_set: ActionSet) -> threading.Timer | None:
    """Let actions that keep a baseline take it ``PRIME_DELAY`` seconds from now (past the
    app's start-up, and not competing with it for the GIL), on a thread of their own."""
    primes = [p for a in action_set.all() if callable(p := getattr(a.fn, "prime", None))]
    if not primes:
        return None

    def run() -> None:
        for prime in primes:
            try:
                prime()
            except Exception:  # a baseline is an optimisation: the first capture takes one
                pass

    timer = threading.Timer(PRIME_DELAY, run)
    timer.name, timer.daemon = "memexport-actions-prime", True
    timer.start()
    return timer


def _serve(service: ActionService, app: ReceiverApp, identity: Identity, port: int | None,
           addr: str | None, certfile: str | None, keyfile: str | None, authed: bool,
           allow_unauthenticated: bool, max_connections: int, timeout: float) -> None:
    raw_port, port_name = _setting(port, "MEMEXPORT_ACTIONS_PORT", DEFAULT_ACTIONS_PORT)
    port_number = _port_from(raw_port, port_name)
    raw_addr, addr_name = _setting(addr, "MEMEXPORT_ACTIONS_ADDR", "127.0.0.1")
    family, host = _listen_address(raw_addr, addr_name, port_number)
    if not authed and not allow_unauthenticated and not _loopback(host):
        raise ValueError(f"the actions receiver would listen on {host}, not loopback: give it "
                         "bearer_token= (or MEMEXPORT_ACTIONS_TOKEN) or basic_auth=")
    if keyfile is not None and certfile is None:
        raise ValueError("keyfile needs certfile: pass the certificate too")
    context = None
    if certfile is not None:
        context = tls_context(certfile, keyfile, ssl.PROTOCOL_TLS_SERVER, None, None, False,
                              None, None)
    httpd = MetricsHTTPServer((host, port_number), family, app, ssl_context=context,
                              max_connections=max_connections, timeout=timeout)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.5},
                              name="memexport-actions-http", daemon=True)
    thread.start()
    service._server, service._thread = httpd, thread
    bound_host, bound_port = httpd.server_address[:2]
    identity.add_port(int(bound_port))
    host_text = str(bound_host)
    shown_host = f"[{host_text}]" if ":" in host_text else host_text
    service.url = f"{'https' if context else 'http'}://{shown_host}:{bound_port}{app.prefix}"
