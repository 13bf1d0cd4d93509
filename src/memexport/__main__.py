"""``python -m memexport``: the ``memexport`` command."""

from memexport.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
