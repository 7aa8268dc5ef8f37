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


# ``pytest -m "not slow"`` is the edit-test loop: the static analysis, the fixer and the docs,
# in this process. A test that starts other processes (the CLI, flake8, pre-commit, pylsp,
# workers killed on purpose) or runs torch is slow; ``.ci/run`` runs everything.
SLOW_MODULES = {
    "test_cli",  # every test runs ``python -m torchgradlint`` as a subprocess
    "test_fix_interrupted", "test_fixtures_runtime", "test_hostile_trees", "test_integrations",
    "test_properties", "test_robustness", "test_runtime_feature", "test_runtime_monitor",
}
SLOW_FIXTURES = {"fixed", "original"}  # test_fix: the fixture tree fixed by the CLI, run on torch
SLOW_HELPERS = {"run_cli"}  # test_fix: the fix command as a subprocess


def pytest_collection_modifyitems(config, items):
    import pytest

    for item in items:
        module = item.module.__name__.rpartition(".")[2] if item.module else ""
        code = getattr(getattr(item, "function", None), "__code__", None)
        if module in SLOW_MODULES or SLOW_FIXTURES & set(getattr(item, "fixturenames", ())) or \
                (code is not None and SLOW_HELPERS & set(code.co_names)):
            item.add_marker(pytest.mark.slow)
