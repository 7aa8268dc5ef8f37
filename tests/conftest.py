import os
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures"


def fixture_files():
    return sorted(p for p in FIXTURES.rglob("*.py") if p.name != "__init__.py")


def fixture_id(path):
    return str(path.relative_to(FIXTURES))
