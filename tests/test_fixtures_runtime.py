"""Executing every fixture on a real torch model shows exactly the bugs its marks claim.

The runtime monitor observes forward and backward passes and optimizer steps; its findings on a
fixture must equal the fixture's ``# expect:`` and ``# expect-runtime:`` marks. A bad fixture
thereby proves its bug happens; a good one proves it does not.
"""

import json
import os
import subprocess
import sys

import pytest

from conftest import ROOT, fixture_files, fixture_id
from fixture_marks import FixtureMarks

pytest.importorskip("torch")

FILES = fixture_files()


@pytest.fixture(scope="module")
def observed():
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    result = subprocess.run(
        [sys.executable, str(ROOT / "tests" / "runtime_runner.py")] + [str(p) for p in FILES],
        capture_output=True, text=True, env=env, cwd=str(ROOT), timeout=1800)
    assert result.returncode == 0, result.stderr[-4000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("path", FILES, ids=[fixture_id(p) for p in FILES])
def test_runtime_observations_match_marks(path, observed):
    marks = FixtureMarks.parse(path.read_text(encoding="utf-8"))
    seen = [tuple(item) for item in observed[str(path)]]
    assert seen == marks.runtime
