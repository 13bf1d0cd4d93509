"""Mounting /metrics in the web frameworks people run, with the real frameworks: FastAPI and
Starlette (a route, no 307 redirect), Flask (werkzeug's DispatcherMiddleware) and Django (a view
in the URLconf). The snippets are the ones docs/instrumenting.md shows."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

import memexport
from tests.conftest import ROOT


def test_fastapi_route_serves_metrics_without_a_redirect() -> None:
    fastapi = pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    app = fastapi.FastAPI()
    app.add_route("/metrics", memexport.make_asgi_app(CollectorRegistry(), collector=False))
    client = TestClient(app)
    resp = client.get("/metrics", follow_redirects=False)
    assert resp.status_code == 200
    assert "memexport_collector_errors_total" in resp.text
    assert resp.headers["content-type"].startswith("text/plain")


def test_fastapi_mount_is_the_redirect_the_docs_warn_about() -> None:
    fastapi = pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    app = fastapi.FastAPI()
    app.mount("/metrics", memexport.make_asgi_app(CollectorRegistry(), collector=False))
    resp = TestClient(app).get("/metrics", follow_redirects=False)
    assert resp.status_code == 307 and resp.headers["location"].endswith("/metrics/")


def test_starlette_route_and_auth() -> None:
    pytest.importorskip("starlette")
    from starlette.applications import Starlette
    from starlette.routing import Route
    from starlette.testclient import TestClient

    metrics = memexport.make_asgi_app(CollectorRegistry(), collector=False,
                                      bearer_token="s3cret")
    client = TestClient(Starlette(routes=[Route("/metrics", metrics)]))
    assert client.get("/metrics", follow_redirects=False).status_code == 401
    resp = client.get("/metrics", headers={"Authorization": "Bearer s3cret"})
    assert resp.status_code == 200 and "memexport_" in resp.text


def test_flask_dispatcher_middleware() -> None:
    flask = pytest.importorskip("flask")
    from werkzeug.middleware.dispatcher import DispatcherMiddleware

    app = flask.Flask("app")

    @app.get("/")
    def index() -> str:
        return "hello"

    app.wsgi_app = DispatcherMiddleware(  # type: ignore[method-assign]
        app.wsgi_app, {"/metrics": memexport.make_wsgi_app(CollectorRegistry(), collector=False)})
    client = app.test_client()
    resp = client.get("/metrics")
    assert resp.status_code == 200 and b"memexport_collector_errors_total" in resp.data
    assert client.get("/").data == b"hello"


def test_django_view_in_a_urlconf(tmp_path: Path) -> None:
    pytest.importorskip("django")
    (tmp_path / "urls.py").write_text(textwrap.dedent("""
        from django.urls import path
        from prometheus_client import CollectorRegistry
        from memexport.exporters.django import make_view

        urlpatterns = [
            path("metrics", make_view(CollectorRegistry(), collector=False)),
            path("private", make_view(CollectorRegistry(), collector=False,
                                      basic_auth=("prom", "pw"))),
        ]
    """))
    (tmp_path / "check.py").write_text(textwrap.dedent("""
        import base64
        import django
        from django.conf import settings

        settings.configure(ROOT_URLCONF="urls", ALLOWED_HOSTS=["testserver"],
                           DEBUG=False, SECRET_KEY="test", MIDDLEWARE=[])
        django.setup()
        from django.test import Client

        client = Client()
        resp = client.get("/metrics")
        assert resp.status_code == 200, resp.status_code
        assert b"memexport_collector_errors_total" in resp.content
        assert resp["Content-Type"].startswith("text/plain")
        om = client.get("/metrics", HTTP_ACCEPT="application/openmetrics-text")
        assert om["Content-Type"].startswith("application/openmetrics-text")
        assert client.get("/private").status_code == 401
        ok = base64.b64encode(b"prom:pw").decode()
        assert client.get("/private", HTTP_AUTHORIZATION="Basic " + ok).status_code == 200
        print("ok")
    """))
    env = {**os.environ,
           "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT / "src"), str(ROOT)])}
    res = subprocess.run([sys.executable, "check.py"], cwd=tmp_path, capture_output=True,
                         text=True, timeout=60, env=env)
    assert res.returncode == 0 and res.stdout == "ok\n", res.stderr
