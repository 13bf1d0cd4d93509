"""Which alerts name this process: its ``job``, its ``instance`` and, in multiprocess mode, its pid.

Prometheus labels every series it scrapes with ``job`` and ``instance`` (``host:port`` of the
target, the pod IP and port in Kubernetes), and alert rules keep them. An alert names this
process when:

- its ``instance`` is one of ``instances`` given, or else has the port of one of this
  process's servers (``ports``) and a host that is this machine: ``localhost``, the host
  name, or an IP address this process can bind (a local interface; the pod IP in a pod).
  Host names other than those are not resolved (no DNS query on a request): pass
  ``instance=`` when Prometheus scrapes this process by a DNS name;
- its ``job`` is ``job``, when ``job`` is given;
- its ``pid``, when it has one, is this process's pid; in multiprocess mode (a pre-fork
  server whose workers share one ``/metrics`` and are told apart by ``pid``) it must have one.

An alert without ``instance`` (an aggregate over targets) names no process.
"""

from __future__ import annotations

import ipaddress
import os
import socket
from collections.abc import Iterable, Mapping

from memexport.core import forks
from memexport.core.checks import shown

__all__ = ["Identity", "split_instance"]

#: Hosts remembered as local or not (bounded: hosts come from requests).
_MAX_REMEMBERED = 256


def split_instance(instance: str) -> tuple[str, int | None]:
    """``("10.0.0.5", 9464)`` from ``"10.0.0.5:9464"`` (``[::1]:9464`` for IPv6)."""
    text = instance.strip()
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port_text = rest[1:] if rest.startswith(":") else ""
    else:
        host, sep, port_text = text.rpartition(":")
        if not sep or ":" in host:  # no port, or a bare IPv6 address
            host, port_text = text, ""
    try:
        port = int(port_text) if port_text else None
    except ValueError:
        port = None
    return host, port if port is None or 0 < port < 65536 else None


class Identity:
    """This process as alerts name it (see the module docstring)."""

    def __init__(self, *, job: str | None = None, instances: Iterable[str] = (),
                 ports: Iterable[int] = (), multiprocess: bool | None = None) -> None:
        if job is not None and (not isinstance(job, str) or not job):
            raise ValueError(f"job must be a non-empty str, got {shown(job)}")
        self.job = job
        self.instances = frozenset(instances)
        for inst in self.instances:
            if not isinstance(inst, str) or not inst:
                raise ValueError(f"instance must be a non-empty str, got {shown(inst)}")
        self.ports = set(ports)
        if multiprocess is None:
            multiprocess = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR")
                                or os.environ.get("prometheus_multiproc_dir"))
        self.multiprocess = multiprocess
        self._local: dict[str, bool] = {}
        self._lock = forks.RLock()
        self._hostname = socket.gethostname().lower()

    def add_port(self, port: int) -> None:
        """Another port this process serves (the receiver's own, the metrics server's)."""
        self.ports.add(int(port))

    def names_us(self, labels: Mapping[str, str]) -> bool:
        """Whether an alert with these labels is about this process."""
        if self.job is not None and labels.get("job") != self.job:
            return False
        pid = labels.get("pid")
        if pid is not None and pid != str(os.getpid()):
            return False
        if pid is None and self.multiprocess:
            return False
        instance = labels.get("instance")
        if not instance:
            return False
        if self.instances:
            return instance in self.instances
        host, port = split_instance(instance)
        return port is not None and port in self.ports and self.is_local(host)

    def is_local(self, host: str) -> bool:
        """``host`` is this machine: localhost, the host name, or a bindable IP address."""
        name = host.strip().lower()
        if name in ("localhost", self._hostname) or name.split(".")[0] == self._hostname:
            return True
        with self._lock:
            known = self._local.get(name)
        if known is not None:
            return known
        local = _bindable(name)
        with self._lock:
            if len(self._local) >= _MAX_REMEMBERED:
                self._local.clear()
            self._local[name] = local
        return local


def _bindable(host: str) -> bool:
    """Whether ``host`` is an IP address of a local interface (binding to it succeeds)."""
    try:
        addr = ipaddress.ip_address(host)
    except ValueError:
        return False
    if addr.is_loopback:
        return True
    if addr.is_unspecified or addr.is_multicast:
        return False
    family = socket.AF_INET6 if addr.version == 6 else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as s:
            s.bind((str(addr), 0))
        return True
    except OSError:
        return False
