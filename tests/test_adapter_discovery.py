"""Adapter discovery without importlib.metadata on the first instrument call: the entry-point
reader gives what importlib.metadata gives, falls back to it when unsure, and the post-import
hook runs once a watched module is imported (or at once if it is)."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import pytest

from memexport.instrument import entrypoints, importhook

GROUPS = ["console_scripts", "pytest11", "opentelemetry_instrumentor", "memexport.adapters"]


@pytest.mark.parametrize("group", GROUPS)
def test_entries_are_importlib_metadatas(group: str) -> None:
    expected = [(ep.name, ep.value) for ep in entry_points(group=group)]
    assert entrypoints._scan(group) == expected
    assert entrypoints.group_entries(group) == expected


def _site(tmp_path: Path) -> Path:
    site = tmp_path / "site"
    for dist, text in (("first_pkg-1.0.dist-info", "[memexport.adapters]\nlib_a = a.ad\n"),
                       ("First.Pkg-2.0.dist-info", "[memexport.adapters]\nlib_a = shadowed\n"),
                       ("other-1.0.egg-info", "# c\n[x]\ny = z\n[memexport.adapters]\n"
                                              " lib_b = b.ad:obj \n")):
        (site / dist).mkdir(parents=True)
        (site / dist / "entry_points.txt").write_text(text)
    (site / "nometa-1.0.dist-info").mkdir()
    (site / "plain-1.0.egg-info").write_text("Name: plain\n")  # an egg-info file
    return site


def test_a_site_of_ones_own_reads_as_importlib_metadata_reads_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "path", [str(_site(tmp_path))])
    mine = entrypoints._scan("memexport.adapters")
    theirs = [(e.name, e.value) for e in entry_points(group="memexport.adapters")]
    assert mine == theirs  # one lib_a: the first of the two dists named first-pkg
    assert sorted(name for name, _v in mine) == ["lib_a", "lib_b"]
    assert ("lib_b", "b.ad:obj") in mine


def test_a_zip_on_the_path_asks_importlib_metadata(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    archive = tmp_path / "deps.zip"
    archive.write_bytes(b"PK\x05\x06" + b"\0" * 18)  # an empty zip
    monkeypatch.setattr(sys, "path", [str(archive), *sys.path])
    with pytest.raises(entrypoints._Unsure):
        entrypoints._scan("console_scripts")
    expected = [(ep.name, ep.value) for ep in entry_points(group="console_scripts")]
    assert entrypoints.group_entries("console_scripts") == expected


def test_post_import_hook_runs_on_import_and_at_once(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "memexport_hooked_mod.py").write_text("VALUE = 41\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    seen: list[int] = []

    def hook(module: object) -> None:
        seen.append(module.VALUE)  # type: ignore[attr-defined]

    importhook.when_imported("memexport_hooked_mod", hook)
    assert seen == []
    import memexport_hooked_mod

    assert seen == [41]
    assert memexport_hooked_mod.__loader__.__class__.__name__ != "_ChainedLoader"
    assert memexport_hooked_mod.__spec__.loader is memexport_hooked_mod.__loader__
    importhook.when_imported("memexport_hooked_mod", hook)  # already imported: now
    assert seen == [41, 41]
    monkeypatch.delitem(sys.modules, "memexport_hooked_mod")


def test_first_cache_imports_neither_importlib_metadata_nor_wrapt() -> None:
    script = ("import sys, memexport\nmemexport.cache({}, name='a')\n"
              "print(sorted(m for m in ('importlib.metadata', 'wrapt', 'email') "
              "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]"
