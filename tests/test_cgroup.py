"""cgroup memory forensics: fixture trees for v1 and v2, and a real OOM kill in a child cgroup.

The fixtures are written as the kernel lays the files out (as prometheus_client tests its
process collector against a fixture /proc). The real test needs root and a writable cgroup v1
memory controller, which these machines and CI have: it fails, never skips, in CI.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import IN_CI

from memexport.core.registry import Registry
from memexport.process.cgroup import families, parse_psi, read_cgroup
from memexport.process.collector import ProcessCollector
from memexport.process.limits import cgroup_dirs

ROOT = Path(__file__).resolve().parent.parent
MiB = 1 << 20

V2_EVENTS = "low 0\nhigh 12\nmax 7\noom 2\noom_kill 1\noom_group_kill 0\n"
V2_PSI = ("some avg10=1.50 avg60=0.75 avg300=0.20 total=4500000\n"
          "full avg10=0.50 avg60=0.25 avg300=0.10 total=1500000\n")
V2_STAT = ("anon 104857600\nfile 52428800\nkernel 8388608\nkernel_stack 65536\n"
           "sock 4096\nshmem 1048576\nfile_mapped 0\n")
V1_STAT = ("cache 1000\nrss 2000\nshmem 30\ntotal_cache 52428800\ntotal_rss 104857600\n"
           "total_shmem 1048576\n")


def tree(tmp_path: Path, proc_cgroup: str, files: dict[str, str]) -> tuple[str, str]:
    cg, proc = tmp_path / "cgroup", tmp_path / "proc"
    (proc / "self").mkdir(parents=True)
    (proc / "self" / "cgroup").write_text(proc_cgroup)
    cg.mkdir()
    for rel, text in files.items():
        path = (proc / rel[len("proc/"):]) if rel.startswith("proc/") else cg / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return str(cg), str(proc)


def samples(reg: Registry, c: ProcessCollector) -> dict[tuple[str, tuple[tuple[str, str], ...]],
                                                      float]:
    c.tick()
    return {(f.name, tuple(sorted(labels.items()))): float(v)  # type: ignore[arg-type]
            for f in c.families() for labels, v in f.samples}


def test_v2_fixture(tmp_path: Path) -> None:
    d = "app.slice/worker/"
    cg, proc = tree(tmp_path, "0::/app.slice/worker\n", {
        "cgroup.controllers": "cpu memory\n",
        d + "memory.events": V2_EVENTS, d + "memory.pressure": V2_PSI,
        d + "memory.stat": V2_STAT, d + "memory.current": "167772160\n",
        d + "memory.high": "268435456\n", d + "memory.max": "536870912\n",
        "proc/pressure/memory": "some avg10=9.00 avg60=9.00 avg300=9.00 total=1\n",
    })
    r = read_cgroup(cg, proc)
    assert r.version == "v2"
    assert r.events == {"oom": 2, "oom_kill": 1, "high": 12, "max": 7}
    assert r.stat == {"anon": 104857600, "file": 52428800, "kernel": 8388608, "sock": 4096,
                      "shmem": 1048576}
    assert (r.usage, r.high, r.psi_scope) == (167772160, 268435456, "cgroup")
    assert r.psi_total == {"some": 4.5, "full": 1.5}
    assert r.psi_avg[("some", "10s")] == pytest.approx(0.015)
    assert r.psi_avg[("full", "300s")] == pytest.approx(0.001)
    reg = Registry()
    s = samples(reg, ProcessCollector(reg, cgroup_root=cg, proc_root=proc, ledger=False))
    assert s[("memexport_cgroup_memory_events_total", (("event", "oom_kill"),))] == 1
    assert s[("memexport_memory_pressure_seconds_total",
              (("kind", "some"), ("scope", "cgroup")))] == 4.5
    assert s[("memexport_cgroup_memory_high_bytes", ())] == 268435456
    assert s[("memexport_process_memory_limit_bytes", (("source", "cgroup_v2"),))] == 536870912
    assert reg.errors.counts()["cgroup"] == 0


def test_v2_memory_high_max_is_absent(tmp_path: Path) -> None:
    cg, proc = tree(tmp_path, "0::/w\n", {"cgroup.controllers": "memory\n",
                                           "w/memory.events": V2_EVENTS, "w/memory.high": "max\n"})
    r = read_cgroup(cg, proc)
    assert r.high is None and r.events["oom_kill"] == 1
    assert not any(f.name == "memexport_cgroup_memory_high_bytes" for f in families(r))


def test_v1_fixture_and_host_pressure(tmp_path: Path) -> None:
    d = "memory/docker/abc/"
    cg, proc = tree(tmp_path, "5:memory:/docker/abc\n4:cpu:/docker/abc\n0::/\n", {
        d + "memory.oom_control": "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n",
        d + "memory.failcnt": "41\n", d + "memory.stat": V1_STAT,
        d + "memory.usage_in_bytes": "157286400\n",
        d + "memory.kmem.usage_in_bytes": "8388608\n",
        d + "memory.kmem.tcp.usage_in_bytes": "0\n",
        d + "memory.limit_in_bytes": "268435456\n",
        "proc/pressure/memory": V2_PSI,
    })
    r = read_cgroup(cg, proc)
    assert r.version == "v1"
    assert r.events == {"oom_kill": 3, "max": 41}
    assert r.stat == {"anon": 104857600, "file": 52428800, "shmem": 1048576, "kernel": 8388608,
                      "sock": 0}
    assert r.usage == 157286400 and r.high is None
    assert r.psi_scope == "host" and r.psi_total == {"some": 4.5, "full": 1.5}


def test_hybrid_host_reads_v2_under_unified(tmp_path: Path) -> None:
    cg, proc = tree(tmp_path, "4:memory:/x\n0::/svc\n", {
        "unified/cgroup.controllers": "", "unified/svc/memory.pressure": V2_PSI})
    dirs = cgroup_dirs(cg, proc)
    assert dirs.v2[0].endswith("unified/svc")
    assert dirs.v1_memory == []  # no memory/ mount in this tree


def test_no_cgroup_files_no_series_no_errors(tmp_path: Path) -> None:
    cg, proc = tree(tmp_path, "0::/\n", {})
    r = read_cgroup(cg, proc)
    assert r.version is None and families(r) == []


def test_garbled_file_is_counted(tmp_path: Path) -> None:
    cg, proc = tree(tmp_path, "0::/w\n", {"cgroup.controllers": "memory\n",
                                           "w/memory.events": "oom lots\noom_kill x y\n",
                                           "w/memory.current": "many\n"})
    reg = Registry()
    s = samples(reg, ProcessCollector(reg, cgroup_root=cg, proc_root=proc, ledger=False))
    assert reg.errors.counts()["cgroup"] == 1
    assert not [k for k in s if k[0].startswith("memexport_cgroup_")]


def test_parse_psi_rejects_garbage() -> None:
    with pytest.raises(ValueError, match="PSI"):
        parse_psi("nothing here\n")


# -- a real OOM kill in a child cgroup -------------------------------------------------------


def _own_v1_memory_dir() -> Path | None:
    dirs = cgroup_dirs()
    return Path(dirs.v1_memory[0]) if dirs.v1_memory else None


@pytest.fixture
def child_cgroup() -> Iterator[Path]:
    """A child memory cgroup (v1) of this process's own, removed afterwards."""
    parent = _own_v1_memory_dir()
    if parent is None or os.geteuid() != 0 or not os.access(parent, os.W_OK):
        msg = "needs root and a writable cgroup v1 memory controller (these machines have one)"
        if IN_CI:
            pytest.fail(msg)
        pytest.skip(msg)
    child = parent / f"memexport-oom-{uuid.uuid4().hex[:8]}"
    child.mkdir()
    try:
        yield child
    finally:
        for _ in range(100):  # the killed processes leave the cgroup asynchronously
            try:
                procs = (child / "cgroup.procs").read_text().split()
                for pid in procs:
                    (parent / "cgroup.procs").write_text(pid)
                child.rmdir()
                break
            except OSError:
                time.sleep(0.1)


WORKER = """
import json, os, subprocess, sys, time
from memexport.core.registry import Registry
from memexport.process.collector import ProcessCollector
cgroup_dir = sys.argv[1]
with open(os.path.join(cgroup_dir, "cgroup.procs"), "w") as f:
    f.write(str(os.getpid()))  # the worker joins the cgroup; its children inherit it
reg = Registry()
c = ProcessCollector(reg, ledger=False)
def events():
    c.tick()
    return {dict(l)["event"]: v for f in c.families()
            if f.name == "memexport_cgroup_memory_events_total" for l, v in f.samples}
before = events()
hog = subprocess.run([sys.executable, "-c",
                      "x = []\\nwhile True: x.append(bytearray(8 << 20))"])
after = events()
limit = [(dict(l), v) for f in c.families() if f.name == "memexport_process_memory_limit_bytes"
         for l, v in f.samples]
print(json.dumps({"before": before, "after": after, "hog_returncode": hog.returncode,
                  "limit": limit}))
"""


def test_a_real_oom_kill_in_a_child_cgroup_is_counted(child_cgroup: Path) -> None:
    limit = 96 * MiB
    (child_cgroup / "memory.limit_in_bytes").write_text(str(limit))
    memsw = child_cgroup / "memory.memsw.limit_in_bytes"
    if memsw.exists():
        memsw.write_text(str(limit))  # no escape into swap
    res = subprocess.run([sys.executable, "-c", textwrap.dedent(WORKER), str(child_cgroup)],
                         capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert res.returncode == 0, res.stderr  # the worker lives on: only the hog was killed
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert out["hog_returncode"] == -9, out  # SIGKILL from the OOM killer
    assert out["after"]["oom_kill"] == out["before"].get("oom_kill", 0) + 1, out
    assert out["limit"] == [[{"source": "cgroup_v1"}, float(limit)]]
    assert (child_cgroup / "memory.oom_control").read_text().split()[-1] == "1"
