"""The ``memexport`` command (also ``python -m memexport``): demo, bench, top and assets."""

from __future__ import annotations

import sys
from collections.abc import Sequence

USAGE = """usage: memexport [--version] {demo,bench,top,assets} [options]

  demo    run a simulated multi-agent app serving /metrics (memexport demo --help)
  bench   time memexport's hot paths against their baselines (memexport bench --help)
  top     live terminal view of /metrics endpoints: where memory goes (memexport top --help)
  assets  write the alert rules for your settings (memexport assets --help)
"""


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        sys.stdout.write(USAGE)
        return 0
    if args[0] in ("-V", "--version"):
        from memexport import __version__

        sys.stdout.write(f"memexport {__version__}\n")
        return 0
    command, rest = args[0], args[1:]
    if command == "demo":
        from memexport.demo import main as demo_main

        return demo_main(rest)
    if command == "assets":
        from memexport.assets.cli import main as assets_main

        return assets_main(rest)
    if command == "bench":
        from memexport.bench import main as bench_main

        return bench_main(rest)
    if command == "top":
        from memexport.top import main as top_main

        return top_main(rest)
    sys.stderr.write(f"memexport: unknown command {command!r}\n{USAGE}")
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
