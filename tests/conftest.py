import os
import pathlib
import tempfile

# Project summaries are cached on disk; keep the tests' cache out of the source tree.
os.environ.setdefault("TORCHGRADLINT_CACHE_DIR", tempfile.mkdtemp(prefix="tgl-cache-"))

ROOT = pathlib.Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures"


def fixture_files():
    return sorted(p for p in FIXTURES.rglob("*.py") if p.name != "__init__.py")


def fixture_id(path):
    return str(path.relative_to(FIXTURES))
