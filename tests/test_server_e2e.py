"""A real Prometheus scrapes memexport's /metrics over TLS with ``basic_auth`` and with an
``authorization`` bearer token; the targets with wrong credentials are down with a 401."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

import memexport
from tests.conftest import free_port
from tests.test_otel_support import Prometheus, wait_for
from tests.tls_support import make_cert

pytestmark = pytest.mark.e2e


def _job(name: str, port: int, ca: Path, **auth: Any) -> dict[str, Any]:
    return {"job_name": name, "scheme": "https", "tls_config": {"ca_file": str(ca)},
            "static_configs": [{"targets": [f"127.0.0.1:{port}"]}], **auth}


def test_prometheus_scrapes_with_basic_auth_and_bearer_token_over_tls(tmp_path: Path) -> None:
    cert, key = make_cert(tmp_path)
    basic = memexport.start_http_server(free_port(), "127.0.0.1", CollectorRegistry(),
                                        str(cert), str(key), collector=False,
                                        basic_auth=("prom", "pa55-word"))
    bearer = memexport.start_http_server(free_port(), "127.0.0.1", CollectorRegistry(),
                                         str(cert), str(key), collector=False,
                                         bearer_token="t0ken")
    password_file = tmp_path / "password"
    password_file.write_text("pa55-word")
    jobs = [
        _job("basic-ok", basic.port, cert,
             basic_auth={"username": "prom", "password_file": str(password_file)}),
        _job("basic-wrong", basic.port, cert,
             basic_auth={"username": "prom", "password": "nope"}),
        _job("basic-missing", basic.port, cert),
        _job("bearer-ok", bearer.port, cert,
             authorization={"type": "Bearer", "credentials": "t0ken"}),
        _job("bearer-wrong", bearer.port, cert,
             authorization={"type": "Bearer", "credentials": "other"}),
    ]
    prom = Prometheus(tmp_path / "prom", jobs)
    try:
        def settled() -> dict[str, dict[str, Any]] | None:
            active = {t["labels"]["job"]: t for t in prom.api("targets")["activeTargets"]}
            done = len(active) == 5 and all(t["health"] != "unknown" for t in active.values())
            return active if done else None

        targets = wait_for(settled, 30, "every target scraped once")
        assert targets["basic-ok"]["health"] == "up", targets["basic-ok"]
        assert targets["bearer-ok"]["health"] == "up", targets["bearer-ok"]
        for job in ("basic-wrong", "basic-missing", "bearer-wrong"):
            assert targets[job]["health"] == "down"
            assert "401" in targets[job]["lastError"], targets[job]
        got = wait_for(lambda: prom.values('up{job=~".*-ok"}'), 30, "up series")
        assert sorted(got.values()) == [1.0, 1.0]
        assert prom.values('memexport_collector_errors_total{job="basic-ok"}')
    finally:
        prom.close()
        basic.close()
        bearer.close()
