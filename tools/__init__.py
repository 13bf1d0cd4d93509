"""Repository tooling (docs generators); not part of the installed package."""
