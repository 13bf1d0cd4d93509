"""The Alertmanager webhook payload (version 4), parsed and validated before anything acts on it.

Alertmanager posts ``{"version": "4", "status", "receiver", "groupKey", "groupLabels",
"commonLabels", "commonAnnotations", "externalURL", "truncatedAlerts", "alerts": [...]}`` with
each alert's ``status``, ``labels``, ``annotations``, ``startsAt``, ``endsAt``,
``generatorURL`` and ``fingerprint``. ``parse`` checks the shape and bounds every size; a
payload it refuses raises ``PayloadError`` whose ``reason`` is one of ``REASONS`` (a bounded
metric label) and whose text never quotes the payload.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["MAX_ALERTS", "MAX_BODY_BYTES", "REASONS", "STATUSES", "Alert", "Notification",
           "PayloadError", "parse"]

#: Largest request body read (bytes); Alertmanager's ``max_alerts`` keeps payloads smaller.
MAX_BODY_BYTES = 1 << 20
#: Most alerts one notification may carry.
MAX_ALERTS = 1000
MAX_LABELS = 64
MAX_LABEL_VALUE = 1024
MAX_ANNOTATION = 16 * 1024
MAX_SHORT = 4096  # groupKey, receiver, URLs, timestamps, fingerprint

STATUSES = ("firing", "resolved")
#: Why a payload was refused (the ``result`` of ``memexport_webhook_requests_total``).
REASONS = ("bad_json", "bad_payload", "bad_version")

_LABEL_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class PayloadError(ValueError):
    """A webhook body that is not a valid Alertmanager v4 payload; ``reason`` in ``REASONS``."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class Alert:
    """One alert of a notification: its status and labels (what actions are matched on)."""

    status: str
    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    starts_at: str
    ends_at: str
    fingerprint: str

    @property
    def name(self) -> str:
        """The ``alertname`` label ("" if absent)."""
        return self.labels.get("alertname", "")


@dataclass(frozen=True)
class Notification:
    """A validated webhook payload."""

    status: str
    receiver: str
    group_key: str
    alerts: tuple[Alert, ...]
    truncated: int


def _bad(what: str) -> PayloadError:
    return PayloadError("bad_payload", f"not an Alertmanager v4 payload: {what}")


def _string(obj: Mapping[str, Any], key: str, *, required: bool = False,
            limit: int = MAX_SHORT) -> str:
    value = obj.get(key)
    if value is None and not required:
        return ""
    if not isinstance(value, str):
        raise _bad(f"{key!r} must be a string")
    if len(value) > limit:
        raise _bad(f"{key!r} is longer than {limit} characters")
    return value


def _labels(obj: Mapping[str, Any], key: str, *, value_limit: int, required: bool = False,
            names: bool = True) -> dict[str, str]:
    value = obj.get(key)
    if value is None and not required:
        return {}
    if not isinstance(value, dict):
        raise _bad(f"{key!r} must be an object of strings")
    if len(value) > MAX_LABELS:
        raise _bad(f"{key!r} has more than {MAX_LABELS} entries")
    out: dict[str, str] = {}
    for k, v in value.items():
        if not isinstance(k, str) or not isinstance(v, str):
            raise _bad(f"{key!r} must map strings to strings")
        if names and not _LABEL_NAME.fullmatch(k):
            raise _bad(f"{key!r} has an invalid label name")
        if len(k) > 256 or len(v) > value_limit:
            raise _bad(f"{key!r} has an entry longer than {value_limit} characters")
        out[k] = v
    return out


def _status(obj: Mapping[str, Any], what: str) -> str:
    status = obj.get("status")
    if status not in STATUSES:
        raise _bad(f"{what} status must be 'firing' or 'resolved'")
    return str(status)


def _alert(raw: Any) -> Alert:
    if not isinstance(raw, dict):
        raise _bad("each alert must be an object")
    return Alert(
        status=_status(raw, "alert"),
        labels=_labels(raw, "labels", value_limit=MAX_LABEL_VALUE, required=True),
        annotations=_labels(raw, "annotations", value_limit=MAX_ANNOTATION, names=False),
        starts_at=_string(raw, "startsAt"),
        ends_at=_string(raw, "endsAt"),
        fingerprint=_string(raw, "fingerprint"),
    )


def parse(body: bytes) -> Notification:
    """Parse and validate one webhook body; ``PayloadError`` (never another error) if bad."""
    if len(body) > MAX_BODY_BYTES:
        raise _bad(f"body over {MAX_BODY_BYTES} bytes")
    try:
        doc = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise PayloadError("bad_json", "webhook body is not JSON (UTF-8)") from None
    if not isinstance(doc, dict):
        raise _bad("the body must be a JSON object")
    if doc.get("version") != "4":
        raise PayloadError("bad_version", "webhook payload version must be \"4\" "
                           "(Alertmanager 0.x webhook_configs)")
    alerts = doc.get("alerts")
    if not isinstance(alerts, list) or not alerts:
        raise _bad("'alerts' must be a non-empty list")
    if len(alerts) > MAX_ALERTS:
        raise _bad(f"more than {MAX_ALERTS} alerts")
    truncated = doc.get("truncatedAlerts", 0)
    if isinstance(truncated, bool) or not isinstance(truncated, int) or truncated < 0:
        raise _bad("'truncatedAlerts' must be a non-negative integer")
    for key in ("groupLabels", "commonLabels"):
        _labels(doc, key, value_limit=MAX_LABEL_VALUE)
    _labels(doc, "commonAnnotations", value_limit=MAX_ANNOTATION, names=False)
    _string(doc, "externalURL")
    return Notification(
        status=_status(doc, "notification"),
        receiver=_string(doc, "receiver"),
        group_key=_string(doc, "groupKey"),
        alerts=tuple(_alert(a) for a in alerts),
        truncated=truncated,
    )
