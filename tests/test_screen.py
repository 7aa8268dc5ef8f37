"""The text screen is a speed path only: skipping the sources it rejects never changes findings."""

import ast
import pytest

from conftest import fixture_files, fixture_id
from torchgradlint.engine import lint_tree, may_contain_findings

FILES = fixture_files()


def findings(source, filename, screen):
    return sorted((f.line, f.col, f.code) for f in lint_tree(ast.parse(source), source, filename,
                                                            screen=screen))


@pytest.mark.parametrize("path", FILES, ids=[fixture_id(p) for p in FILES])
def test_screen_keeps_every_fixture_finding(path):
    source = path.read_text(encoding="utf-8")
    assert findings(source, str(path), True) == findings(source, str(path), False)


def test_screen_skips_files_that_never_mention_torch():
    source = "import numpy as np\n\nfor x in range(3):\n    y = np.mean(x)\n"
    assert not may_contain_findings(source)
    assert findings(source, "plain.py", False) == []
