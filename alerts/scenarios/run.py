#!/usr/bin/env python3
"""Replay every scenario through promtool against the rule files; print the verdicts.

    python alerts/scenarios/run.py                 # all scenarios, the shipped rules
    python alerts/scenarios/run.py -k leak         # scenarios whose name contains "leak"
    python alerts/scenarios/run.py --rules DIR     # a tuned copy (memexport assets rules)
    python alerts/scenarios/run.py --mode multiprocess --markdown

Exit status 1 when any verdict is wrong. Scenarios run two at a time (``-j``).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from catalog import scenarios  # noqa: E402
from guide import monitor_verdicts  # noqa: E402
from modes import MODES, transform  # noqa: E402
from replay import RANK, Result, Scenario, fmt_dur, lead_times, run  # noqa: E402

RULES = HERE.parent


def replay_all(selected: list[Scenario], rules: list[Path], mode: str = "single",
               jobs: int = 2, promtool: str = "promtool") -> list[Result]:
    fn = None if mode == "single" else (lambda cols: transform(cols, mode))
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        return list(pool.map(lambda s: run(s, rules, promtool, fn), selected))


def _when(r: Result, t: float) -> str:
    onset = r.scenario.onset
    return f"at {fmt_dur(t)}" if onset is None else f"+{fmt_dur(t - onset)}" if t >= onset \
        else f"{fmt_dur(t - onset)} (before)"


def table(results: list[Result]) -> str:
    """scenario | what fired | when | severity | verdict, one line per alert (first firing)."""
    rows = [("scenario", "what fired", "when", "severity", "verdict")]
    for r in results:
        verdict = "ok" if r.ok else "WRONG: " + "; ".join(r.errors[:1] + r.problems)
        fired: dict[tuple[str, str], list[tuple[float, str]]] = {}
        for e in r.episodes:
            fired.setdefault((e.alertname, e.severity), []).append(
                (e.start, ",".join(f"{k}={v}" for k, v in sorted(e.labels.items()))))
        lines = sorted(fired.items(), key=lambda kv: (min(kv[1]), -RANK.get(kv[0][1], 0)))
        if not lines:
            rows.append((r.scenario.name, "-", "-", "-", verdict))
        for i, ((name, sev), starts) in enumerate(lines):
            n, series = len(starts), len({lbl for _, lbl in starts})
            times = _when(r, min(starts)[0])
            if n > series:
                times += f" ({n} times)"
            if series > 1:
                times += f" ({series} series)"
            rows.append((r.scenario.name if i == 0 else "", name, times, sev,
                         verdict if i == 0 else ""))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    out = []
    for j, row in enumerate(rows):
        out.append("  ".join(c.ljust(w) for c, w in zip(row[:4], widths, strict=True))
                   + "  " + row[4])
        if j == 0:
            out.append("  ".join("-" * w for w in widths) + "  " + "-" * 7)
    return "\n".join(out)


def markdown(results: list[Result]) -> str:
    """The alerts/README.md table: time to ticket / page per scenario, and the guide's checks."""
    head = ("| scenario | deadline | memexport: ticket | memexport: page | guide MemoryMonitor, "
            "as written | guide MemoryMonitor, one kept monitor | verdict |\n"
            "|---|---|---|---|---|---|---|")
    lines = [head]
    for r in results:
        s = r.scenario
        deadline = "; ".join(x.text() for x in s.expects)
        tk, pg = r.first(1), r.first(2)
        if s.healthy:
            ticket = "none" if tk is None else f"false alarm at {fmt_dur(tk)}"
            page = "none" if pg is None else f"false alarm at {fmt_dur(pg)}"
        else:
            ticket = "none" if tk is None else _when(r, tk)
            page = "none" if pg is None else _when(r, pg)
            leads = [x for x in lead_times(r, ("oom", "fds", "budget")) if x >= 0]
            if leads and any(x.kind == "page_before" for x in s.expects):
                n = len(lead_times(r, ("oom", "fds", "budget")))
                what = "the budget" if "budget" in s.expects[-1].events else "the death"
                if n > 1:
                    what = f"each of {n} deaths"
                page += f" ({fmt_dur(min(leads))} before {what})"
        written, kept = monitor_verdicts(r)
        lines.append(f"| {s.title} | {deadline} | {ticket} | {page} | {written} | {kept} | "
                     f"{'ok' if r.ok else 'WRONG'} |")
    return "\n".join(lines)


README = RULES / "README.md"
BEGIN, END = "<!-- replay-table -->", "<!-- /replay-table -->"


def update_readme(table_md: str) -> None:
    text = README.read_text(encoding="utf-8")
    head, rest = text.split(BEGIN, 1)
    tail = rest.split(END, 1)[1]
    README.write_text(f"{head}{BEGIN}\n{table_md}\n{END}{tail}", encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("-k", default="", help="only scenarios whose name contains one of these "
                                           "(comma-separated)")
    p.add_argument("--rules", type=Path, default=RULES, help="directory of *.rules.yml")
    p.add_argument("--mode", choices=MODES, default="single")
    p.add_argument("-j", "--jobs", type=int, default=2)
    p.add_argument("--markdown", action="store_true", help="print the README table too")
    p.add_argument("--update-readme", action="store_true",
                   help="write the table into alerts/README.md (all scenarios, shipped rules)")
    args = p.parse_args(argv)
    promtool = shutil.which("promtool")
    if promtool is None:
        print("promtool not found: install the Debian package 'prometheus'", file=sys.stderr)
        return 2
    rules = sorted(args.rules.resolve().glob("*.rules.yml"))
    if not rules:
        print(f"no *.rules.yml in {args.rules}", file=sys.stderr)
        return 2
    keys = [k for k in args.k.split(",") if k] or [""]
    selected = [s for s in scenarios() if any(k in s.name for k in keys)]
    started = time.monotonic()
    results = replay_all(selected, rules, args.mode, args.jobs, promtool)
    print(table(results))
    if args.markdown:
        print()
        print(markdown(results))
    if args.update_readme:
        update_readme(markdown(results))
    wrong = [r.scenario.name for r in results if not r.ok]
    slow = sorted(results, key=lambda r: -r.seconds)[:3]
    print("\nslowest: " + ", ".join(f"{r.scenario.name} {r.seconds:.0f}s" for r in slow))
    print(f"\n{len(results)} scenarios ({args.mode}) in {time.monotonic() - started:.0f}s; "
          f"{'all verdicts right' if not wrong else 'WRONG: ' + ', '.join(wrong)}")
    return 1 if wrong else 0


if __name__ == "__main__":
    sys.exit(main())
