"""The webhook receiver over real HTTP: payload validation, auth, TLS, identity, limits, time
boxes, and that nothing a client sends can raise into the app."""

from __future__ import annotations

import json
import os
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from actions_support import alert, get, payload, post

import memexport
from memexport.actions import ActionContext, ActionSet, Match, parse, start_actions
from memexport.actions.identity import Identity, split_instance
from memexport.actions.limits import Limiter, Limits
from memexport.actions.payload import MAX_BODY_BYTES, PayloadError
from memexport.core.registry import Registry

TOKEN = "s3cret-token"


class Receiver:
    def __init__(self, **kwargs: Any) -> None:
        self.actions = kwargs.pop("action_set", ActionSet())
        self.registry = kwargs.pop("registry", Registry())
        self.calls: list[tuple[str, str, int]] = []
        self.svc = start_actions(port=0, bearer_token=kwargs.pop("bearer_token", TOKEN),
                                 action_set=self.actions, registry=self.registry, **kwargs)
        self.port = int(self.svc.url.rsplit(":", 1)[1].split("/")[0])
        self.instance = f"127.0.0.1:{self.port}"

    def add(self, name: str = "act", alerts: Any = "TestAlert", fn: Any = None,
            **limits: Any) -> None:
        def record(ctx: ActionContext) -> None:
            self.calls.append((ctx.action, ctx.status, len(ctx.alerts)))

        memexport.action(fn or record, name=name, alerts=alerts, actions=self.actions,
                         **{"cooldown": 0, **limits})

    def send(self, *alerts: dict[str, Any], token: str | None = TOKEN
             ) -> tuple[int, dict[str, Any]]:
        return post(self.svc.url + "/webhook", payload(*alerts), token=token)

    def ours(self, name: str = "TestAlert", status: str = "firing", **labels: str
             ) -> dict[str, Any]:
        return alert(name, status, instance=self.instance, job="app", **labels)

    def metric(self, name: str, **labels: str) -> float:
        fam = {f.name: f for f in self.registry.collect()}
        for sample_labels, value in fam[name].samples:
            if sample_labels == labels:
                return float(value)  # type: ignore[arg-type]
        return 0.0

    def wait(self, n: int) -> None:
        assert self.svc.wait_idle(n, 30), "runs did not end"


@pytest.fixture
def rx() -> Iterator[Receiver]:
    r = Receiver()
    try:
        yield r
    finally:
        r.svc.close()


# -- payload ---------------------------------------------------------------------------------


def test_parse_accepts_an_alertmanager_v4_payload() -> None:
    n = parse(json.dumps(payload(alert(instance="a:1"), alert(status="resolved"))).encode())
    assert n.status == "firing" and n.receiver == "process-actions"
    assert [a.status for a in n.alerts] == ["firing", "resolved"]
    assert n.alerts[0].name == "MemexportProcessMemoryNearLimit"
    assert n.alerts[0].labels["instance"] == "a:1"


@pytest.mark.parametrize(("body", "reason"), [
    (b"not json", "bad_json"),
    (b"\xff\xfe", "bad_json"),
    (b"[1, 2]", "bad_payload"),
    (json.dumps({**payload(alert()), "version": "3"}).encode(), "bad_version"),
    (json.dumps({**payload(alert()), "alerts": []}).encode(), "bad_payload"),
    (json.dumps({**payload(alert()), "alerts": [1]}).encode(), "bad_payload"),
    (json.dumps(payload({**alert(), "status": "weird"})).encode(), "bad_payload"),
    (json.dumps(payload({**alert(), "labels": {"alertname": 5}})).encode(), "bad_payload"),
    (json.dumps(payload({**alert(), "labels": {"bad-name": "x"}})).encode(), "bad_payload"),
    (json.dumps(payload({**alert(), "labels": {"a": "x" * 5000}})).encode(), "bad_payload"),
    (json.dumps(payload(*[alert()] * 1001)).encode(), "bad_payload"),
    (json.dumps({**payload(alert()), "truncatedAlerts": -1}).encode(), "bad_payload"),
    (b"[" * 100000 + b"]" * 100000, "bad_json"),
])
def test_parse_refuses_what_is_not_a_v4_payload(body: bytes, reason: str) -> None:
    with pytest.raises(PayloadError) as err:
        parse(body)
    assert err.value.reason == reason
    assert "x" * 50 not in str(err.value)  # the payload is never quoted


# -- HTTP ------------------------------------------------------------------------------------


def test_a_matching_firing_alert_runs_the_action_off_the_request_thread(rx: Receiver) -> None:
    seen: list[str] = []

    def act(ctx: ActionContext) -> None:
        seen.append(threading.current_thread().name)
        ctx.freed(4096)

    rx.add("flush", fn=act, frees=True)
    code, body = rx.send(rx.ours())
    assert code == 200
    assert body["runs"] == [{"action": "flush", "status": "firing", "alerts": 1,
                             "queued": True}]
    rx.wait(1)
    assert seen == ["memexport-action-flush"]
    assert rx.metric("memexport_action_runs_total", action="flush") == 1
    assert rx.metric("memexport_action_step_freed_bytes_total", action="flush",
                     step="custom") == 4096
    assert rx.metric("memexport_webhook_requests_total", result="accepted") == 1
    assert rx.metric("memexport_webhook_alerts_total", status="firing", result="matched") == 1
    status = get(rx.svc.url, TOKEN)
    (flush,) = status["actions"]
    assert flush["last"]["outcome"] == "ok" and flush["cooldown"] == 0


@pytest.mark.parametrize(("body", "ctype", "code", "result"), [
    (b"{", "application/json", 400, "bad_json"),
    (json.dumps({"version": "4"}).encode(), "application/json", 400, "bad_payload"),
    (json.dumps({"version": "2", "alerts": []}).encode(), "application/json", 400,
     "bad_version"),
    (b"{}", "text/plain", 415, "unsupported_media_type"),
])
def test_bad_requests_get_a_4xx_and_are_counted(rx: Receiver, body: bytes, ctype: str,
                                               code: int, result: str) -> None:
    rx.add()
    assert post(rx.svc.url + "/webhook", body, token=TOKEN, content_type=ctype)[0] == code
    assert rx.metric("memexport_webhook_requests_total", result=result) == 1
    assert rx.metric("memexport_action_runs_total", action="act") == 0


def test_method_size_and_auth_refusals(rx: Receiver) -> None:
    url = rx.svc.url + "/webhook"
    assert post(url, b"", token=TOKEN, method="GET")[0] == 405
    assert rx.metric("memexport_webhook_requests_total", result="bad_method") == 1
    with socket.create_connection(("127.0.0.1", rx.port)) as s:  # refused before the body
        s.sendall(b"POST /actions/webhook HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
                  + TOKEN.encode() + b"\r\nContent-Type: application/json\r\n"
                  + f"Content-Length: {MAX_BODY_BYTES + 1}\r\n\r\n".encode())
        assert s.recv(200).startswith(b"HTTP/1.0 413")
    assert rx.metric("memexport_webhook_requests_total", result="too_large") == 1
    forged = payload(rx.ours())
    assert post(url, forged)[0] == 401
    assert post(url, forged, token="wrong")[0] == 401
    assert post(rx.svc.url + "/evidence", b"", method="GET")[0] == 401
    assert rx.metric("memexport_webhook_requests_total", result="unauthorized") == 2


def test_a_body_shorter_than_its_length_or_a_dropped_client(rx: Receiver) -> None:
    """A client announcing more than it sends is cut off at the socket timeout; one that
    disconnects mid-body leaves nothing behind but a counted bad request."""
    rx.add()
    with socket.create_connection(("127.0.0.1", rx.port)) as s:
        s.sendall(b"POST /actions/webhook HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
                  + TOKEN.encode() + b"\r\nContent-Type: application/json\r\n"
                  b"Content-Length: 100\r\n\r\n{\"version\"")
        s.shutdown(socket.SHUT_WR)
        reply = s.recv(200)
    assert reply.startswith(b"HTTP/1.0 400"), reply
    assert rx.metric("memexport_webhook_requests_total", result="bad_payload") == 1


def test_alerts_naming_another_process_are_ignored(rx: Receiver) -> None:
    rx.add()
    others = [alert("TestAlert", instance="10.255.255.1:9464"),  # not a local address
              alert("TestAlert", instance=f"127.0.0.1:{rx.port + 1}"),  # another port
              alert("TestAlert", instance=rx.instance, pid=str(os.getpid() + 1)),
              alert("TestAlert")]  # an aggregate without instance
    code, body = rx.send(*others)
    assert code == 200 and body["for_this_process"] == 0 and body["runs"] == []
    assert rx.metric("memexport_webhook_alerts_total", status="firing",
                     result="other_process") == 4
    rx.send(rx.ours("OtherAlert"))
    assert rx.metric("memexport_webhook_alerts_total", status="firing",
                     result="unmatched") == 1
    assert rx.metric("memexport_action_runs_total", action="act") == 0


def test_identity() -> None:
    assert split_instance("10.0.0.5:9464") == ("10.0.0.5", 9464)
    assert split_instance("[::1]:9464") == ("::1", 9464)
    assert split_instance("host") == ("host", None)
    me = Identity(ports=[9464], multiprocess=False)
    assert me.names_us({"instance": "127.0.0.1:9464"})
    assert me.names_us({"instance": "localhost:9464"})
    assert me.names_us({"instance": f"{socket.gethostname()}:9464"})
    assert not me.names_us({"instance": "192.0.2.7:9464"})  # TEST-NET: never local
    assert not me.names_us({"instance": "127.0.0.1:9465"})
    assert me.names_us({"instance": "127.0.0.1:9464", "pid": str(os.getpid())})
    job = Identity(job="api", instances=["app-0.app:9464"])
    assert job.names_us({"instance": "app-0.app:9464", "job": "api"})
    assert not job.names_us({"instance": "app-0.app:9464", "job": "worker"})
    workers = Identity(ports=[9464], multiprocess=True)
    assert not workers.names_us({"instance": "127.0.0.1:9464"})  # which worker?
    assert workers.names_us({"instance": "127.0.0.1:9464", "pid": str(os.getpid())})


# -- limits ----------------------------------------------------------------------------------


def test_limiter() -> None:
    lim = Limiter(Limits(max_runs=2, window=3600, cooldown=0, timeout=1))
    assert lim.admit() is None
    lim.start()
    assert lim.admit() == "running"
    lim.release()
    assert lim.admit() is None
    lim.start()
    lim.release()
    assert lim.admit() == "rate_limit"
    assert lim.admit(limited=False) is None  # a resolved alert: only one at a time
    cool = Limiter(Limits(cooldown=600))
    assert cool.admit() is None
    cool.start()
    cool.release()
    assert cool.admit() == "cooldown"
    queued = Limiter(Limits(cooldown=0))
    assert queued.admit() is None
    assert queued.admit() == "running"  # one firing run waiting is enough
    assert queued.admit(limited=False) is None  # its resolved alert queues behind it
    queued.start()
    queued.start(limited=False)
    queued.timed_out()
    assert queued.admit(limited=False) == "running"  # nothing starts beside a late run
    queued.release()
    assert queued.admit() is None
    with pytest.raises(ValueError, match="max_runs"):
        Limits(max_runs=0)
    with pytest.raises(ValueError, match="timeout"):
        Limits(timeout=-1)


def test_cooldown_skips_are_counted(rx: Receiver) -> None:
    rx.add(cooldown=600)
    rx.send(rx.ours())
    rx.wait(1)
    _, body = rx.send(rx.ours())
    assert body["runs"][0]["skipped"] == "cooldown"
    assert rx.metric("memexport_action_skipped_total", action="act", reason="cooldown") == 1
    assert rx.metric("memexport_action_runs_total", action="act") == 1


def test_one_notification_is_one_run_per_action_and_resolved_is_separate(rx: Receiver
                                                                        ) -> None:
    rx.add("both", fn=None, on=("firing", "resolved"))
    rx.send(rx.ours(cache="a"), rx.ours(cache="b"), rx.ours(status="resolved"))
    rx.wait(2)
    assert sorted(rx.calls) == [("both", "firing", 2), ("both", "resolved", 1)]


def test_a_run_past_its_timeout_is_counted_and_not_restarted_meanwhile(rx: Receiver) -> None:
    release = threading.Event()

    def stuck(ctx: ActionContext) -> None:
        release.wait(30)

    rx.add("stuck", fn=stuck, timeout=0.2)
    rx.send(rx.ours())
    assert memexport.actions.ACTIONS is not rx.actions
    for _ in range(100):
        if rx.metric("memexport_action_failures_total", action="stuck", reason="timeout"):
            break
        time.sleep(0.05)
    assert rx.metric("memexport_action_failures_total", action="stuck", reason="timeout") == 1
    _, body = rx.send(rx.ours())
    assert body["runs"][0]["skipped"] == "running"
    release.set()
    rx.wait(1)
    assert get(rx.svc.url, TOKEN)["actions"][0]["last"]["outcome"] == "timeout"


def test_an_action_raising_anything_is_counted_not_raised(rx: Receiver,
                                                           caplog: pytest.LogCaptureFixture
                                                           ) -> None:
    def boom(ctx: ActionContext) -> None:
        raise SystemExit("secret user data 4111")

    rx.add("boom", fn=boom)
    rx.send(rx.ours())
    rx.wait(1)
    assert rx.metric("memexport_action_failures_total", action="boom", reason="error") == 1
    assert "SystemExit" in caplog.text and "4111" not in caplog.text
    # The dispatcher survived: the next action still runs.
    rx.add("after")
    rx.send(rx.ours())
    rx.wait(2)
    assert ("after", "firing", 1) in rx.calls


def test_dry_run_counts_and_runs_nothing() -> None:
    r = Receiver(dry_run=True)
    try:
        r.add()
        _, body = r.send(r.ours())
        assert body["runs"][0]["skipped"] == "dry_run"
        assert r.metric("memexport_action_skipped_total", action="act", reason="dry_run") == 1
        assert r.calls == []
    finally:
        r.svc.close()


# -- serving ---------------------------------------------------------------------------------


def test_mounted_on_the_metrics_server_beside_metrics() -> None:
    server = memexport.start_http_server(0, collector=False, bearer_token="scrape-token")
    actions = ActionSet()
    svc = start_actions(server, bearer_token=TOKEN, action_set=actions, registry=Registry())
    try:
        memexport.action(lambda ctx: None, name="noop", alerts="TestAlert", actions=actions)
        assert svc.url == f"http://127.0.0.1:{server.port}/actions"
        inst = f"127.0.0.1:{server.port}"
        # Each path keeps its own credentials.
        assert post(svc.url + "/webhook", payload(alert("TestAlert", instance=inst)),
                    token="scrape-token")[0] == 401
        code, body = post(svc.url + "/webhook", payload(alert("TestAlert", instance=inst)),
                          token=TOKEN)
        assert code == 200 and body["for_this_process"] == 1
        assert post(server.url, b"", token=TOKEN, method="GET")[0] == 401
        svc.close()
        assert post(svc.url + "/webhook", payload(alert()), token=TOKEN)[0] == 401  # /metrics
    finally:
        svc.close()
        server.close()


def test_off_loopback_needs_credentials() -> None:
    with pytest.raises(ValueError, match="not loopback"):
        start_actions(port=0, addr="0.0.0.0", action_set=ActionSet(), registry=Registry())
    with pytest.raises(ValueError, match="bearer_token"):
        start_actions(port=0, bearer_token="has space", action_set=ActionSet(),
                      registry=Registry())


def test_tls(tmp_path: Path) -> None:
    import urllib.request

    from tls_support import make_cert

    cert, key = make_cert(tmp_path)
    r = Receiver(certfile=str(cert), keyfile=str(key))
    try:
        r.add()
        assert r.svc.url.startswith("https://")
        ctx = ssl.create_default_context(cafile=str(cert))
        req = urllib.request.Request(r.svc.url + "/webhook",
                                     data=json.dumps(payload(r.ours())).encode(),
                                     headers={"Content-Type": "application/json",
                                              "Authorization": f"Bearer {TOKEN}"})
        with urllib.request.urlopen(req, context=ctx, timeout=10) as resp:
            assert resp.status == 200
        r.wait(1)
        assert r.calls == [("act", "firing", 1)]
    finally:
        r.svc.close()


def test_actions_from_a_config_file(tmp_path: Path) -> None:
    actions = ActionSet()
    memexport.action(lambda ctx: None, name="flush", alerts="Old", actions=actions)
    (tmp_path / "token").write_text(TOKEN + "\n")
    cfg = tmp_path / "actions.toml"
    cfg.write_text(f"""
[receiver]
evidence_dir = "{tmp_path / 'ev'}"
bearer_token_file = "{tmp_path / 'token'}"
job = "app"

[[actions]]
use = "shed"
alerts = ["MemexportProcessMemoryNearLimit"]
labels = {{ severity = "critical" }}
cooldown = 900
[actions.options]
caches = {{ llm = 0.5 }}
gc = false

[[actions]]
use = "flush"
alerts = ["MemexportCacheOverBudget"]
max_runs = 1
""")
    svc = start_actions(port=0, config=cfg, action_set=actions, registry=Registry())
    try:
        by_name = {a["name"]: a for a in get(svc.url, TOKEN)["actions"]}
        assert by_name["shed"]["cooldown"] == 900
        assert by_name["shed"]["labels"] == {"severity": ["critical"]}
        assert by_name["flush"]["alerts"] == ["MemexportCacheOverBudget"]
        assert by_name["flush"]["max_runs"] == 1
        assert svc.identity.job == "app" and svc.store is not None
    finally:
        svc.close()


@pytest.mark.parametrize(("config", "message"), [
    ({"actions": [{"use": "nope", "alerts": ["A"]}]}, "no action named 'nope'"),
    ({"actions": [{"use": "shed", "alerts": ["A"], "color": 1}]}, "unknown keys"),
    ({"actions": [{"use": "shed", "alerts": ["A"], "options": {"caches": {"x": 2}}}]},
     "fraction"),
    ({"actions": [{"use": "evidence", "alerts": ["bad name!"]}]}, "invalid alert name"),
    ({"receiver": {"port": 1}}, "receiver: use only"),
])
def test_bad_config_names_the_entry(config: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        start_actions(port=0, config=config, action_set=ActionSet(), registry=Registry())


def test_match() -> None:
    from memexport.actions.payload import Alert

    m = Match.of(["A", "B"], {"severity": ["critical", "warning"]})
    a = Alert("firing", {"alertname": "A", "severity": "critical"}, {}, "", "", "")
    assert m.matches(a)
    assert not m.matches(Alert("resolved", a.labels, {}, "", "", ""))
    assert not m.matches(Alert("firing", {"alertname": "A", "severity": "info"}, {}, "", "",
                               ""))
    assert Match.of("*").matches(Alert("firing", {"alertname": "Z"}, {}, "", "", ""))
    with pytest.raises(ValueError, match="on must be"):
        Match.of("A", on="sometimes")


def test_serve_false_mounts_in_an_app_of_your_own() -> None:
    """The receiver as a WSGI app inside a real Flask app (as in a pre-fork worker)."""
    flask = pytest.importorskip("flask")
    from werkzeug.middleware.dispatcher import DispatcherMiddleware

    actions = ActionSet()
    calls: list[str] = []
    memexport.action(lambda ctx: calls.append(ctx.alertname), name="noop", alerts="TestAlert",
                     actions=actions, cooldown=0)
    svc = start_actions(serve=False, bearer_token=TOKEN, action_set=actions,
                        registry=Registry(), instance="app-0")
    try:
        app = flask.Flask("app")
        app.wsgi_app = DispatcherMiddleware(app.wsgi_app, {"/actions": lambda e, s: svc.app(
            {**e, "PATH_INFO": "/actions" + e.get("PATH_INFO", "")}, s)})
        client = app.test_client()
        body = payload(alert("TestAlert", instance="app-0"))
        assert client.post("/actions/webhook", json=body).status_code == 401
        res = client.post("/actions/webhook", json=body,
                          headers={"Authorization": f"Bearer {TOKEN}"})
        assert res.status_code == 200 and res.get_json()["for_this_process"] == 1
        assert svc.wait_idle(1, 30) and calls == ["TestAlert"]
        with pytest.raises(ValueError, match="serve=False"):
            start_actions(serve=False, port=1, action_set=ActionSet(), registry=Registry())
    finally:
        svc.close()


def test_a_forked_child_starts_afresh(rx: Receiver) -> None:
    """A run in progress at fork stays in the parent; the child runs its own."""
    release = threading.Event()
    rx.add("slow", fn=lambda ctx: release.wait(10), cooldown=0)
    rx.send(rx.ours())
    for _ in range(100):
        if rx.actions.get("slow").limiter.busy:  # type: ignore[union-attr]
            break
        time.sleep(0.01)
    pid = os.fork()
    if pid == 0:  # the child: not busy, and its dispatcher runs a new run
        code = 1
        try:
            act = rx.actions.get("slow")
            assert act is not None and not act.limiter.busy
            release.set()
            before = rx.svc.dispatcher.completed
            assert rx.svc.dispatcher.submit(act, "firing", ()) is None
            code = 0 if rx.svc.dispatcher.wait_idle(before + 1, 10) else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    release.set()
    assert os.waitstatus_to_exitcode(status) == 0


def test_alerts_naming_another_replica_are_relayed_to_it() -> None:
    """Two replicas on one port (127.0.0.1 and 127.0.0.2, as two pod IPs), Alertmanager's
    notification reaching the wrong one: it forwards the alert, once, with the token."""
    from conftest import free_port

    port = free_port()
    sets = [ActionSet(), ActionSet()]
    calls: list[tuple[str, str]] = []
    for i, actions in enumerate(sets):
        memexport.action(lambda ctx, i=i: calls.append((f"replica{i}", ctx.alertname)),
                         name="noop", alerts="TestAlert", actions=actions, cooldown=0)
    replicas = [start_actions(port=port, addr=f"127.0.0.{i + 1}", bearer_token=TOKEN,
                              instance=f"127.0.0.{i + 1}:{port}", action_set=sets[i],
                              registry=Registry(), relay_networks=["127.0.0.0/8"])
                for i in range(2)]
    a, b = replicas
    try:
        other = alert("TestAlert", instance=f"127.0.0.2:{port}")
        outside = alert("TestAlert", instance=f"192.0.2.9:{port}")  # not the pod network
        code, body = post(a.url + "/webhook", payload(other, outside), token=TOKEN)
        assert code == 200 and body["relayed"] == 1 and body["runs"] == []
        assert b.wait_idle(1, 30)
        assert calls == [("replica1", "TestAlert")]
        for _ in range(200):  # counted once the replica answered
            if a.metrics.value("memexport_webhook_relays_total", "sent"):
                break
            time.sleep(0.05)
        assert a.metrics.value("memexport_webhook_relays_total", "sent") == 1
        assert a.metrics.value("memexport_webhook_alerts_total", "firing", "relayed") == 1
        assert a.metrics.value("memexport_webhook_alerts_total", "firing", "other_process") == 1
        # A relayed request is never relayed again (no loop between replicas).
        mine = alert("TestAlert", instance=f"127.0.0.1:{port}")
        code, body = post(b.url + "/webhook", payload(mine), token=TOKEN)
        assert body["relayed"] == 1 and a.wait_idle(1, 30)
        assert ("replica0", "TestAlert") in calls
        import urllib.request

        req = urllib.request.Request(a.url + "/webhook", data=json.dumps(payload(
            alert("TestAlert", instance=f"127.0.0.2:{port}"))).encode(), headers={
            "Content-Type": "application/json", "Authorization": f"Bearer {TOKEN}",
            "X-Memexport-Relayed": "1"})
        with urllib.request.urlopen(req, timeout=10) as resp:
            assert json.loads(resp.read())["relayed"] == 0
        with pytest.raises(ValueError, match="relaying needs"):
            start_actions(port=0, relay_networks=["10.0.0.0/8"], action_set=ActionSet(),
                          registry=Registry())
        with pytest.raises(ValueError, match="not a network"):
            start_actions(port=0, bearer_token=TOKEN, relay_networks=["pods"],
                          action_set=ActionSet(), registry=Registry())
    finally:
        for r in replicas:
            r.close()


def test_prefork_workers_hand_alerts_to_the_worker_their_pid_names(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two workers sharing one PROMETHEUS_MULTIPROC_DIR (a fork, as gunicorn's): the one that
    got the request leaves the alert naming the other's pid in that worker's inbox."""
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    marker = tmp_path / "ran"
    actions = ActionSet()
    memexport.action(lambda ctx: marker.write_text(f"{os.getpid()} {ctx.alertname}"),
                     name="mark", alerts="TestAlert", actions=actions, cooldown=0)
    svc = start_actions(serve=False, bearer_token=TOKEN, action_set=actions,
                        registry=Registry(), instance="app:9464")
    assert svc.identity.multiprocess and svc.inbox is not None
    pid = os.fork()
    if pid == 0:  # the other worker: its inbox was made at fork; it runs what arrives there
        code = 3
        try:
            for _ in range(400):
                if marker.exists():
                    code = 0 if marker.read_text() == f"{os.getpid()} TestAlert" else 4
                    break
                time.sleep(0.05)
        finally:
            os._exit(code)
    try:
        inbox = tmp_path / "memexport-actions" / str(pid)
        for _ in range(200):
            if inbox.is_dir():
                break
            time.sleep(0.05)
        sibling = alert("TestAlert", instance="app:9464", pid=str(pid))
        gone = alert("TestAlert", instance="app:9464", pid="999999999")  # no such worker
        answer = svc.handle(parse(json.dumps(payload(sibling, gone)).encode()))
        assert answer["relayed"] == 1 and answer["runs"] == []
        assert svc.metrics.value("memexport_webhook_relays_total", "sent") == 1
        assert svc.metrics.value("memexport_webhook_alerts_total", "firing",
                                 "other_process") == 1
    finally:
        _, status = os.waitpid(pid, 0)
        svc.close()
    assert os.waitstatus_to_exitcode(status) == 0
    assert not (tmp_path / "memexport-actions" / str(os.getpid())).exists()  # closed: removed


def test_the_asgi_app_in_fastapi() -> None:
    fastapi = pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    actions = ActionSet()
    calls: list[str] = []
    memexport.action(lambda ctx: calls.append(ctx.alertname), name="noop", alerts="TestAlert",
                     actions=actions, cooldown=0)
    svc = start_actions(serve=False, bearer_token=TOKEN, action_set=actions,
                        registry=Registry(), instance="app-0")
    try:
        app = fastapi.FastAPI()
        app.mount("/actions", svc.asgi_app)
        client = TestClient(app)
        body = payload(alert("TestAlert", instance="app-0"))
        assert client.post("/actions/webhook", json=body).status_code == 401
        res = client.post("/actions/webhook", json=body,
                          headers={"Authorization": f"Bearer {TOKEN}"})
        assert res.status_code == 200 and res.json()["for_this_process"] == 1
        assert svc.wait_idle(1, 30) and calls == ["TestAlert"]
        big = client.post("/actions/webhook", content=b" " * (MAX_BODY_BYTES + 10),
                          headers={"Authorization": f"Bearer {TOKEN}",
                                   "Content-Type": "application/json"})
        assert big.status_code == 413
        status = client.get("/actions", headers={"Authorization": f"Bearer {TOKEN}"})
        assert status.json()["actions"][0]["name"] == "noop"
    finally:
        svc.close()
