"""The speed paths are shortcuts only: with them off, every file gets the same findings.

``Config(shortcuts=False)`` switches off what the linter skips to be fast -- the text screen,
the importers that never name a called function, the re-analysis of functions whose callees did
not change. Every fixture (the multi-file project included, through its files on disk) must
get identical findings both ways.

The accuracy study's corpus is not in the repository (``bench/get_corpus.sh`` fetches it).
Point ``TGL_CORPUS`` at it to run the same comparison over every file of the study:

    TGL_CORPUS=/path/to/corpus pytest tests/test_shortcuts.py -k corpus
"""

import ast
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest

from conftest import fixture_files, fixture_id
from torchgradlint.config import Config
from torchgradlint.engine import lint_file, lint_tree, may_contain_findings

FAST = Config()
SLOW = Config(shortcuts=False)
FILES = fixture_files()
CORPUS = os.environ.get("TGL_CORPUS")


def findings(path: str, config: Config):
    return sorted((f.line, f.col, f.code, f.message) for f in lint_file(path, config))


@pytest.mark.parametrize("path", FILES, ids=[fixture_id(p) for p in FILES])
def test_fixture_findings_are_the_same_without_shortcuts(path: Path) -> None:
    fast = findings(str(path), FAST)
    assert fast == findings(str(path), SLOW)


def test_the_comparison_sees_findings() -> None:
    """The comparison above is not vacuous: the fixtures hold findings of every family."""
    codes = {code for path in FILES for _, _, code, _ in findings(str(path), FAST)}
    assert {"TGL101", "TGL201", "TGL301"} <= codes


def test_screen_skips_files_that_never_mention_torch() -> None:
    source = "import numpy as np\n\nfor x in range(3):\n    y = np.mean(x)\n"
    assert not may_contain_findings(source)
    assert lint_tree(ast.parse(source), source, "plain.py", SLOW) == []


def test_screen_keeps_libraries_built_on_torch() -> None:
    """A Hugging Face script can miss ``no_grad`` without ever writing "torch": the screen
    and the import gate let it through, and the finding is the same both ways."""
    source = (
        "from transformers import AutoModelForSequenceClassification, AutoTokenizer\n"
        "\n"
        "tokenizer = AutoTokenizer.from_pretrained('distilbert-base-uncased')\n"
        "model = AutoModelForSequenceClassification.from_pretrained('distilbert-base-uncased')\n"
        "\n"
        "\n"
        "def predict(texts):\n"
        "    inputs = tokenizer(texts, return_tensors='pt', padding=True)\n"
        "    return model(**inputs).logits.argmax(-1).tolist()\n"
    )
    assert "torch" not in source
    fast = [(f.line, f.code) for f in lint_tree(ast.parse(source), source, "hf.py", FAST)]
    slow = [(f.line, f.code) for f in lint_tree(ast.parse(source), source, "hf.py", SLOW)]
    assert fast == slow == [(9, "TGL101")]


def _both_ways(path: str):
    return path, findings(path, FAST), findings(path, SLOW)


@pytest.mark.skipif(not CORPUS, reason="TGL_CORPUS is not set (the study's corpus is not in "
                                        "the repository; bench/get_corpus.sh fetches it)")
def test_corpus_findings_are_the_same_without_shortcuts() -> None:
    paths = sorted(str(p) for p in Path(CORPUS).rglob("*.py")
                   if not any(part.startswith(".") for part in p.parts))
    assert paths, f"no .py files under {CORPUS}"
    differences = []
    total = 0
    with ProcessPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        for path, fast, slow in pool.map(_both_ways, paths, chunksize=16):
            total += len(fast)
            if fast != slow:
                differences.append((path, sorted(set(fast) ^ set(slow))))
    assert not differences, differences[:20]
    assert total > 0
