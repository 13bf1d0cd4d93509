"""The evidence action and its directory: what a capture holds, and the directory's bounds."""

from __future__ import annotations

import json
import os
import threading
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import memexport
from memexport.actions import ActionContext, EvidenceStore, evidence
from memexport.actions.capture import memray_available
from memexport.actions.payload import Alert
from memexport.actions.store import file_name
from memexport.core.registry import Registry

ALERT = Alert("firing", {"alertname": "MemexportProcessMemoryNearLimit", "job": "app"}, {},
              "", "", "")


class Growing:
    """Instances made by the test: the type whose count grows."""


@pytest.fixture
def tracing() -> Iterator[None]:
    started = not tracemalloc.is_tracing()
    if started:
        tracemalloc.start(1)
    try:
        yield
    finally:
        if started:
            tracemalloc.stop()


def capture(act: Any, registry: Registry, store: EvidenceStore, status: str = "firing",
            timeout: float = 30.0) -> ActionContext:
    ctx = ActionContext(act.name, status, (ALERT,), timeout, registry=registry, store=store)
    act(ctx)
    return ctx


def test_a_capture_holds_every_section(tmp_path: Path, tracing: None,
                                       fresh_registry: Registry) -> None:
    reg = fresh_registry
    memo = memexport.cache({f"k{i}": "v" * i for i in range(100)}, "memo", registry=reg)
    store = EvidenceStore(tmp_path)
    act = evidence(alerts="*", referrers=True)
    act.fn.prime()  # the baseline the receiver takes at start
    kept = [bytearray(4096) for _ in range(1000)]  # ~4 MB from this line, after the baseline
    grown = [Growing() for _ in range(5000)]
    ctx = capture(act, reg, store)
    name = ctx.result["file"]
    assert name.endswith("-MemexportProcessMemoryNearLimit-evidence.json")
    doc = json.loads((tmp_path / name).read_text())
    assert doc["alerts"] == [dict(ALERT.labels)] and doc["pid"] == os.getpid()
    sections = doc["sections"]
    assert set(sections) == {"tracemalloc", "components", "ledger", "threads", "referrers"}
    tm = sections["tracemalloc"]
    assert tm["tracing"] and tm["baseline"] and tm["order"] == "size_diff_bytes"
    top = tm["top"][0]
    assert top["site"].endswith(f"{Path(__file__).name}:{_line('kept = [bytearray')}"), tm
    assert top["size_diff_bytes"] >= 4_000_000
    (row,) = [r for r in sections["components"] if r["name"] == "memo"]
    assert row["kind"] == "cache" and row["memexport_cache_items"] == 100
    assert sections["ledger"]["rss_bytes"] > 0 and "unattributed" in sections["ledger"]["classes"]
    threads = {t["thread"]: t for t in sections["threads"]}
    assert threads[threading.current_thread().name]["current"]
    assert any("test_a_capture_holds_every_section" in line
               for line in threads[threading.current_thread().name]["stack"])
    growth = {t["type"]: t for t in sections["referrers"]["types"]}
    assert growth[f"{__name__}.Growing"]["count"] >= 5000
    assert growth[f"{__name__}.Growing"]["referrers"].get("list", 0) >= 1
    assert set(doc["seconds"]) == set(sections)
    # Nothing of the data itself: no value of the cache, no repr of an object.
    assert "vvvv" not in (tmp_path / name).read_text()
    # The next capture diffs against this one.
    again = json.loads((tmp_path / capture(act, reg, store).result["file"]).read_text())
    assert again["sections"]["tracemalloc"]["top"][0]["size_diff_bytes"] < 4_000_000
    del kept, grown, memo


def _line(text: str) -> int:
    lines = Path(__file__).read_text().splitlines()
    return next(i for i, line in enumerate(lines, 1) if text in line and "_line(" not in line)


def test_resolved_rebaselines_and_writes_nothing(tmp_path: Path, tracing: None,
                                                fresh_registry: Registry) -> None:
    store = EvidenceStore(tmp_path)
    act = evidence(alerts="*")
    ctx = capture(act, fresh_registry, store, status="resolved")
    assert ctx.result == {"rebaselined": True}
    assert store.index() == []
    assert act.fn.state.baseline is not None


def test_without_tracemalloc(tmp_path: Path, fresh_registry: Registry) -> None:
    if tracemalloc.is_tracing():
        pytest.skip("tracemalloc is on in this process")  # pragma: no cover
    store = EvidenceStore(tmp_path)
    doc = json.loads((tmp_path / capture(evidence(alerts="*"), fresh_registry, store)
                      .result["file"]).read_text())
    assert doc["sections"]["tracemalloc"]["tracing"] is False
    act = evidence(alerts="*", start_tracemalloc=True, sections=("tracemalloc",))
    try:
        doc = json.loads((tmp_path / capture(act, fresh_registry, store).result["file"])
                         .read_text())
        assert doc["sections"]["tracemalloc"]["started"] is True
        assert tracemalloc.is_tracing()
    finally:
        tracemalloc.stop()


def test_sections_past_the_deadline_are_skipped(tmp_path: Path,
                                                fresh_registry: Registry) -> None:
    store = EvidenceStore(tmp_path)
    ctx = capture(evidence(alerts="*"), fresh_registry, store, timeout=1e-9)
    doc = json.loads((tmp_path / ctx.result["file"]).read_text())
    assert all(v == {"skipped": "deadline"} for v in doc["sections"].values())


def test_a_failing_section_leaves_its_type(tmp_path: Path, fresh_registry: Registry,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    from memexport.actions import sections

    def broken(state: Any, ctx: Any) -> Any:
        raise RuntimeError("user data 4111")

    monkeypatch.setitem(sections.SECTIONS, "threads", broken)
    store = EvidenceStore(tmp_path)
    ctx = capture(evidence(alerts="*", sections=("threads", "components")), fresh_registry,
                  store)
    text = (tmp_path / ctx.result["file"]).read_text()
    assert json.loads(text)["sections"]["threads"] == {"error": "RuntimeError"}
    assert "4111" not in text


def test_no_directory_is_a_failure_and_unknown_sections_an_error(
        fresh_registry: Registry) -> None:
    act = evidence(alerts="*")
    with pytest.raises(RuntimeError, match="evidence directory"):
        act(ActionContext(act.name, "firing", (ALERT,), 10, registry=fresh_registry))
    with pytest.raises(ValueError, match="unknown evidence section"):
        evidence(alerts="*", sections=("heap",))
    with pytest.raises(ValueError, match="shorter than"):
        evidence(alerts="*", memray_seconds=60, timeout=30)
    with pytest.raises(ValueError, match="evidence_dir"):
        memexport.start_actions(port=0, actions=[evidence(alerts="*")],
                                action_set=memexport.actions.ActionSet(), registry=Registry())


@pytest.mark.skipif(not memray_available(), reason="memray not installed (optional extra)")
def test_memray_capture(tmp_path: Path, fresh_registry: Registry) -> None:
    import memray

    store = EvidenceStore(tmp_path)
    act = evidence(alerts="*", sections=("components",), memray_seconds=0.5)
    stop = threading.Event()

    def allocate() -> None:
        while not stop.is_set():
            _ = [bytearray(1000) for _ in range(100)]
            time.sleep(0.01)

    worker = threading.Thread(target=allocate)
    worker.start()
    try:
        ctx = capture(act, fresh_registry, store)
    finally:
        stop.set()
        worker.join()
    name = ctx.result["memray_file"]
    assert name.endswith("-evidence.bin") and name in {f["name"] for f in store.index()}
    reader = memray.FileReader(str(tmp_path / name))
    assert reader.metadata.total_allocations > 0


# -- the directory ----------------------------------------------------------------------------


def test_names_and_the_index(tmp_path: Path) -> None:
    store = EvidenceStore(tmp_path / "ev")
    assert oct((tmp_path / "ev").stat().st_mode & 0o777) == "0o700"
    a = store.write("Memexport/Odd Name", "evidence", "json", b"{}")
    b = store.write("Memexport/Odd Name", "evidence", "json", b"{}")
    assert a is not None and b is not None and a != b
    assert "-Memexport_Odd_Name-evidence" in a
    assert oct((tmp_path / "ev" / a).stat().st_mode & 0o777) == "0o600"
    index = store.index()
    assert [f["name"] for f in index] == sorted([a, b], reverse=True)
    assert index[0]["alertname"] == "Memexport_Odd_Name" and index[0]["action"] == "evidence"
    (tmp_path / "ev" / "notes.txt").write_text("mine")
    assert len(store.index()) == 2 and store.usage() == (4, 2)
    assert store.path_of("../notes.txt") is None and store.path_of("notes.txt") is None
    assert store.path_of(a) == tmp_path / "ev" / a
    assert file_name("A", "evidence", "json", 0.0) == "19700101T000000.000Z-A-evidence.json"


def test_the_caps_and_retention(tmp_path: Path) -> None:
    store = EvidenceStore(tmp_path, max_bytes=1000, max_files=3, max_age=3600)
    names = [store.write(f"A{i}", "evidence", "json", b"x" * 300) for i in range(5)]
    assert [f["name"] for f in store.index()] == names[:1:-1]  # the three newest
    assert store.write("Big", "evidence", "json", b"x" * 1001) is None  # never fits
    assert store.usage() == (900, 3)
    store.write("B", "evidence", "json", b"x" * 700)  # makes room: two oldest go
    assert store.usage()[0] <= 1000
    old = tmp_path / names[-1]
    os.utime(old, (time.time() - 7200, time.time() - 7200))
    (tmp_path / "unrelated.json").write_text("{}")
    store.write("C", "evidence", "json", b"{}")
    assert not old.exists() and (tmp_path / "unrelated.json").exists()
    with pytest.raises(ValueError, match="evidence_max_files"):
        EvidenceStore(tmp_path, max_files=0)
