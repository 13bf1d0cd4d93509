"""Relaying alerts to the replica they name: for several pods behind one Service.

Alertmanager posts a notification to one URL; behind a Service it reaches one replica at
random, and the alert may be about another. With ``start_actions(relay_networks=[...])`` the
replica that received it forwards the alerts naming another replica to that replica's own
receiver: ``POST <scheme>://<instance><prefix>/webhook``, with the same ``Authorization``
header it was given (every replica has the same token) and ``X-Memexport-Relayed: 1``, which
a replica never relays again.

The target is an address taken from a payload, so it is bounded: the ``instance`` host must be
an IP address inside ``relay_networks`` (the pod network), its port one this process serves
(replicas of one Deployment serve the same port), and not this process. Forwarding runs on a
thread of its own with a queue of ``QUEUE`` notifications and a ``timeout`` per request;
each one is counted in ``memexport_webhook_relays_total{result}`` (``sent``, ``failed``,
``dropped`` when the queue is full).
"""

from __future__ import annotations

import ipaddress
import json
import logging
import queue
import ssl
import threading
import urllib.error
import urllib.request
import weakref
from collections.abc import Iterable

from memexport.actions.identity import Identity, split_instance
from memexport.actions.metrics import ActionMetrics
from memexport.actions.payload import Alert
from memexport.core import forks
from memexport.core.checks import shown

__all__ = ["HEADER", "QUEUE", "Relay", "group_by_instance", "payload_of"]

log = logging.getLogger("memexport")

#: The header marking a relayed request (never relayed again).
HEADER = "X-Memexport-Relayed"
QUEUE = 32

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def payload_of(alerts: list[Alert]) -> bytes:
    """A v4 webhook payload carrying ``alerts``."""
    status = "firing" if any(a.status == "firing" for a in alerts) else "resolved"
    return json.dumps({
        "version": "4", "status": status, "receiver": "memexport-relay", "groupKey": "",
        "truncatedAlerts": 0, "groupLabels": {}, "commonLabels": {}, "commonAnnotations": {},
        "externalURL": "",
        "alerts": [{"status": a.status, "labels": dict(a.labels),
                    "annotations": dict(a.annotations), "startsAt": a.starts_at,
                    "endsAt": a.ends_at, "fingerprint": a.fingerprint} for a in alerts],
    }).encode()


class Relay:
    """Forwards alerts to the replica their ``instance`` names (see the module docstring)."""

    def __init__(self, networks: Iterable[str], identity: Identity, metrics: ActionMetrics, *,
                 scheme: str, prefix: str, timeout: float = 5.0,
                 ssl_context: ssl.SSLContext | None = None) -> None:
        self.networks: list[Network] = []
        for net in networks:
            try:
                self.networks.append(ipaddress.ip_network(net, strict=False))
            except (TypeError, ValueError):
                raise ValueError(f"relay_networks: {shown(net)} is not a network such as "
                                 f"10.0.0.0/8") from None
        if not self.networks:
            raise ValueError("relay_networks must name at least one network (the pods')")
        self.identity = identity
        self.metrics = metrics
        self.scheme = scheme
        self.prefix = prefix
        self.timeout = timeout
        self.ssl_context = ssl_context
        self._queue: queue.Queue[tuple[str, bytes, str] | None] = queue.Queue(QUEUE)
        self._thread: threading.Thread | None = None
        self._lock = forks.RLock()
        self._logged = False
        _relays.add(self)

    def accepts(self, instance: str) -> bool:
        """Whether alerts naming ``instance`` may be forwarded there."""
        host, port = split_instance(instance)
        if port is None or port not in self.identity.ports:
            return False
        try:
            addr = ipaddress.ip_address(host)
        except ValueError:
            return False
        if not any(addr in net for net in self.networks):
            return False
        if self.identity.instances:  # not ourselves
            return instance not in self.identity.instances
        return not self.identity.is_local(host)

    def forward(self, instance: str, alerts: list[Alert], authorization: str) -> bool:
        """Queue the alerts for ``instance``; False (counted as dropped) if the queue is full."""
        host, port = split_instance(instance)
        shown_host = f"[{host}]" if ":" in host else host
        url = f"{self.scheme}://{shown_host}:{port}{self.prefix}/webhook"
        try:
            self._queue.put_nowait((url, payload_of(alerts), authorization))
        except queue.Full:
            self.metrics.relay("dropped")
            return False
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, name="memexport-relay",
                                                daemon=True)
                self._thread.start()
        return True

    def _loop(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            url, body, authorization = item
            headers = {"Content-Type": "application/json", HEADER: "1"}
            if authorization:
                headers["Authorization"] = authorization
            req = urllib.request.Request(url, data=body, headers=headers, method="POST")
            try:
                with urllib.request.urlopen(req, timeout=self.timeout,
                                            context=self.ssl_context) as resp:
                    resp.read(65536)
                self.metrics.relay("sent")
            except Exception as exc:
                self.metrics.relay("failed")
                if not self._logged:
                    self._logged = True
                    log.warning("memexport: relaying alerts to another replica failed (%s); "
                                "counted in memexport_webhook_relays_total, logged once",
                                type(exc).__name__)

    def close(self) -> None:
        thread = self._thread
        if thread is not None and thread.is_alive():
            try:
                self._queue.put(None, timeout=1)
            except queue.Full:
                return
            thread.join(2)

    def _after_fork(self) -> None:
        self._queue = queue.Queue(QUEUE)
        self._thread = None


_relays: weakref.WeakSet[Relay] = weakref.WeakSet()


@forks.after_fork_in_child
def _after_fork() -> None:
    for relay in list(_relays):
        relay._after_fork()


def group_by_instance(alerts: Iterable[Alert]) -> dict[str, list[Alert]]:
    out: dict[str, list[Alert]] = {}
    for a in alerts:
        out.setdefault(a.labels.get("instance", ""), []).append(a)
    return out
