"""Start-up as whole processes: ``import memexport`` against ``import prometheus_client``, and
the time to a first scrape served by each (``make_wsgi_app()`` called once, in-process).

Each script runs in a fresh interpreter (``sys.executable``, this environment), the variants
interleaved, ``RUNS`` times each; the figure is the median CPU time (user + system) of the
child process, which other processes on the machine inflate less than the wall time (given
in the note). ``python -c pass`` is shown for the interpreter's own share. Target (issue 12):
``import memexport`` at most 1.3x ``import prometheus_client``. The public API is lazy, so
``import memexport`` alone loads little: the same bound is applied to the first use (import
and instrument one dict, against import and create one prometheus_client Counter). The
first scrapes are shown.

Both sides start from cached bytecode: the children write and read it under a private
``PYTHONPYCACHEPREFIX`` (a first, untimed run of each script fills it). Without that, a
source checkout (or ``PYTHONDONTWRITEBYTECODE``) compiles memexport's modules in every child
while prometheus_client loads the ``.pyc`` files pip wrote, which is not a start-up an
installed app sees.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

from memexport.bench.model import Entry, Measure, ratio_at_most

__all__ = ["cases", "child_cost"]

_SCRAPE = """
import io
def scrape(app):
    environ = {{"REQUEST_METHOD": "GET", "PATH_INFO": "/metrics", "QUERY_STRING": "",
               "SERVER_NAME": "localhost", "SERVER_PORT": "80", "wsgi.input": io.BytesIO(),
               "wsgi.url_scheme": "http", "SERVER_PROTOCOL": "HTTP/1.1"}}
    status = []
    body = b"".join(app(environ, lambda s, h, e=None: status.append(s)))
    assert status[0].startswith("200") and body, status
{setup}
scrape(app)
"""

SCRIPTS = {
    "python -c pass": "pass",
    "import prometheus_client": "import prometheus_client",
    "import memexport": "import memexport",
    "prometheus_client, first counter": (
        "import prometheus_client\nprometheus_client.Counter('answers_total', 'Answers.')"),
    "memexport, first cache": "import memexport\nmemexport.cache({}, name='answers')",
    "first scrape, prometheus_client": _SCRAPE.format(setup=(
        "from prometheus_client import make_wsgi_app\napp = make_wsgi_app()")),
    "first scrape, memexport": _SCRAPE.format(setup=(
        "import memexport\ncache = memexport.cache({}, name='answers')\n"
        "app = memexport.make_wsgi_app()")),
}


def child_cost(script: str, env: dict[str, str] | None = None) -> tuple[float, float]:
    """(CPU ns, wall ns) of a fresh interpreter running ``script`` (in ``env``, default
    this process's environment)."""
    t0 = time.perf_counter_ns()
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, env=env)
    _pid, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter_ns() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    if proc.stderr:
        proc.stderr.close()
    if proc.returncode != 0:
        raise RuntimeError(f"start-up script failed: {err.strip().splitlines()[-1:]}")
    return (usage.ru_utime + usage.ru_stime) * 1e9, float(wall)


def cases(quick: bool) -> list[Entry]:
    runs = 3 if quick else 9
    memo: dict[str, list[tuple[float, float]]] = {}

    def all_runs() -> dict[str, list[tuple[float, float]]]:
        if not memo:
            cache = tempfile.mkdtemp(prefix="memexport-bench-pycache-")
            env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
            env["PYTHONPYCACHEPREFIX"] = cache
            try:
                for script in SCRIPTS.values():  # untimed: writes both sides' bytecode
                    child_cost(script, env)
                memo.update({k: [] for k in SCRIPTS})
                for r in range(runs):
                    order = list(SCRIPTS) if r % 2 == 0 else list(reversed(SCRIPTS))
                    for key in order:
                        memo[key].append(child_cost(SCRIPTS[key], env))
            finally:
                shutil.rmtree(cache, ignore_errors=True)
        return memo

    def figure(key: str) -> Any:
        def read() -> tuple[float, str]:
            got = all_runs()[key]
            cpu = statistics.median(c for c, _w in got)
            wall = statistics.median(w for _c, w in got)
            return cpu, f"wall {wall / 1e6:,.0f} ms; median of {runs} processes"
        return read

    def name(key: str) -> str:
        return f"startup: {key} (process CPU)"

    return [
        Measure(name("python -c pass"), figure("python -c pass"), "ns"),
        Measure(name("import prometheus_client"), figure("import prometheus_client"), "ns"),
        Measure(name("import memexport"), figure("import memexport"), "ns",
                ratio_at_most(1.3), baseline=name("import prometheus_client")),
        Measure(name("prometheus_client, first counter"),
                figure("prometheus_client, first counter"), "ns"),
        Measure(name("memexport, first cache"), figure("memexport, first cache"), "ns",
                ratio_at_most(1.3), baseline=name("prometheus_client, first counter")),
        Measure(name("first scrape, prometheus_client"),
                figure("first scrape, prometheus_client"), "ns"),
        Measure(name("first scrape, memexport"), figure("first scrape, memexport"), "ns",
                baseline=name("first scrape, prometheus_client")),
    ]
