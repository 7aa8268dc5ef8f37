"""Property tests: random programs never crash the analysis, and findings do not depend on
what cannot matter.

(a) hypothesmith's random valid Python (with a torch import and a small torch snippet appended,
    so the analysis runs instead of the text screen returning early) never makes ``lint_source``
    raise, report an internal error or run long.
(b) Random PyTorch-shaped programs (``pytorch_programs.py``) keep the same findings -- same codes
    at the same lines -- when every local variable is renamed to another name of its role, when
    blank and comment lines are inserted (lines shift, nothing else), when the indentation or the
    line endings change, and when the top-level definitions are reordered. The plugin, given the
    ``ast`` tree, agrees with ``lint_source``. Randomly damaged versions (lines deleted, duplicated,
    re-indented, the file cut short) never crash.

Examples are bounded (``max_examples``, derandomized) and no test has a deadline: CI stays fast
and steady. ``TGL_PROPERTY_SCALE=50`` multiplies the examples and draws fresh ones (long runs).
Each lint runs under a CPU-time limit, so a hang fails the example instead of the CI job.
"""

from __future__ import annotations

import ast
import os
import random
import sys
from pathlib import Path

import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, assume, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pytorch_programs import generate, insert_blank_and_comment_lines, programs  # noqa: E402
from cpu_limit import time_limit  # noqa: E402

from torchgradlint.engine import lint_source  # noqa: E402
from torchgradlint.plugin import TorchGradLintPlugin  # noqa: E402

# hypothesmith writes code like ``1()`` that Python compiles with a SyntaxWarning.
pytestmark = pytest.mark.filterwarnings("ignore::SyntaxWarning")

LIMIT = 15.0  # CPU seconds for one lint; generated programs take a few milliseconds

# CI runs a fixed, small set of examples (derandomized: the same every run). For a long search,
# TGL_PROPERTY_SCALE=50 multiplies every max_examples by 50 and draws fresh random examples.
SCALE = float(os.environ.get("TGL_PROPERTY_SCALE", "1"))


def examples(n: int) -> int:
    return max(1, int(n * SCALE))


COMMON = dict(deadline=None, derandomize=SCALE == 1, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                     HealthCheck.filter_too_much])


def lint(source: str, filename: str = "generated.py"):
    """Findings as (line, code), sorted; fails on an internal error or a hang."""
    errors = []
    with time_limit(LIMIT):
        findings = lint_source(source, filename,
                               on_error=lambda f, where, error: errors.append((where, error)))
    assert not errors, errors
    return sorted((finding.line, finding.code) for finding in findings)


# --------------------------------------------------------------------------- (a) any Python

TORCH_SNIPPETS = [
    "import torch\n",
    "import torch\nmodel = torch.nn.Linear(2, 2)\nmodel.eval()\nfor x in val_loader:\n"
    "    y = model(x)\n",
    "import torch as T\n\n@T.no_grad()\ndef evaluate(model, loader):\n    model.eval()\n"
    "    return [model(x) for x in loader]\n",
    "import torch\nwith torch.no_grad:\n    pass\nmodel.train\n",
    "import torch\ndef step(netG, netD, optD, z):\n    fake = netG(z)\n    loss = netD(fake).mean()\n"
    "    loss.backward()\n    optD.step()\n",
]


def _with_torch(generated: str, snippet: str) -> str:
    """hypothesmith's module, then a torch snippet (appended: ``from __future__`` imports must
    stay first)."""
    return generated.rstrip("\\\n") + "\n\n" + snippet


try:
    import hypothesmith
except ImportError:  # pragma: no cover - listed in the test extra
    hypothesmith = None

needs_hypothesmith = pytest.mark.skipif(hypothesmith is None, reason="pip install hypothesmith")


def _parses(source: str) -> bool:
    try:
        ast.parse(source)
        return True
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return False


@needs_hypothesmith
@settings(max_examples=examples(60), **COMMON)
@given(generated=hypothesmith.from_grammar() if hypothesmith else st.nothing(),
       snippet=st.sampled_from(TORCH_SNIPPETS))
def test_any_valid_python_from_the_grammar(generated: str, snippet: str) -> None:
    source = _with_torch(generated, snippet)
    assume(_parses(source))
    lint(source)
    lint(generated)  # as generated: usually screened out, must not fail either


@needs_hypothesmith
@settings(max_examples=examples(30), **COMMON)
@given(generated=hypothesmith.from_node() if hypothesmith else st.nothing(),
       snippet=st.sampled_from(TORCH_SNIPPETS))
def test_any_valid_python_from_libcst_nodes(generated: str, snippet: str) -> None:
    """hypothesmith.from_node: programs built from libcst nodes (more statements and calls,
    fewer odd tokens than the grammar)."""
    source = _with_torch(generated, snippet)
    assume(_parses(source))
    lint(source)


# --------------------------------------------------------------------------- (b) PyTorch programs


@settings(max_examples=examples(40), **COMMON)
@given(program=programs(), rng=st.randoms(use_true_random=False))
def test_findings_do_not_depend_on_local_names(program, rng) -> None:
    expected = lint(program.source())
    renamed = program.source(program.renaming(rng))
    assert lint(renamed) == expected, renamed


@settings(max_examples=examples(40), **COMMON)
@given(program=programs(), rng=st.randoms(use_true_random=False),
       count=st.integers(min_value=1, max_value=25))
def test_findings_shift_with_inserted_blank_and_comment_lines(program, rng, count) -> None:
    source = program.source()
    expected = lint(source)
    reformatted, new_line = insert_blank_and_comment_lines(source, rng, count)
    assert lint(reformatted) == sorted((new_line[line], code) for line, code in expected), \
        reformatted


@settings(max_examples=examples(25), **COMMON)
@given(program=programs(), indent=st.sampled_from(["\t", "  ", "        "]),
       newline=st.sampled_from(["\n", "\r\n"]))
def test_findings_do_not_depend_on_indentation_or_line_endings(program, indent, newline) -> None:
    expected = lint(program.source())
    assert lint(program.source(indent=indent, newline=newline)) == expected


@settings(max_examples=examples(30), **COMMON)
@given(program=programs(), rng=st.randoms(use_true_random=False))
def test_findings_do_not_depend_on_the_order_of_definitions(program, rng) -> None:
    """Functions and classes are looked up when called, not when defined: reordering the
    top-level definitions (the script stays last) moves findings with their lines only."""
    expected = lint(program.source())
    reordered, new_line = program.reordered(rng)
    assert lint(reordered.source()) == sorted((new_line[line], code) for line, code in expected), \
        reordered.source()


@settings(max_examples=examples(25), **COMMON)
@given(program=programs())
def test_plugin_agrees_with_the_engine(program) -> None:
    source = program.source()
    with time_limit(LIMIT):
        engine = sorted((f.line, f.col, f.code) for f in lint_source(source, "generated.py"))
        plugin = sorted((line, col, text.split()[0]) for line, col, text, _ in TorchGradLintPlugin(
            ast.parse(source), source.splitlines(True), "generated.py").run())
    assert plugin == engine


def _mutate(source: str, rng: random.Random) -> str:
    lines = source.splitlines(True)
    for _ in range(rng.randint(1, 6)):
        if not lines:
            break
        i = rng.randrange(len(lines))
        action = rng.choice(["delete", "duplicate", "indent", "dedent", "swap", "cut", "splice",
                             "garble"])
        if action == "delete":
            del lines[i]
        elif action == "duplicate":
            lines.insert(i, lines[i])
        elif action == "indent":
            lines[i] = "    " + lines[i]
        elif action == "dedent":
            lines[i] = lines[i][4:] if lines[i].startswith("    ") else lines[i]
        elif action == "swap" and i + 1 < len(lines):
            lines[i], lines[i + 1] = lines[i + 1], lines[i]
        elif action == "cut":
            cut = rng.randrange(len(lines[i]) + 1)
            lines = lines[:i] + [lines[i][:cut]]
        elif action == "splice":
            j = rng.randrange(len(lines))
            lines.insert(i, lines[j])
        else:
            position = rng.randrange(len(lines[i]) + 1)
            lines[i] = lines[i][:position] + rng.choice(
                ["(", ")", ":", "\\", "'", '"""', " = ", ".", ",", "\t", "\x00", "\r", "lambda"]) + \
                lines[i][position:]
    return "".join(lines)


@settings(max_examples=examples(60), **COMMON)
@given(program=programs(), rng=st.randoms(use_true_random=False))
def test_damaged_programs_never_crash(program, rng) -> None:
    lint(_mutate(program.source(), rng))


# --------------------------------------------------------------------------- reproducers


def _helper_chain(depth: int, reverse: bool) -> str:
    order = range(depth - 1, -1, -1) if reverse else range(depth)
    lines = ["import torch", "import torch.nn as nn", "model = nn.Linear(2, 2)"]
    for i in order:
        if i < depth - 1:
            lines += [f"def h{i}(m, x):", f"    return h{i + 1}(m, x)"]
        else:
            lines += [f"def h{i}(m, x):", "    return m(x)"]
    lines += ["def validate(loader):", "    model.eval()", "    for x in loader:",
              "        h0(model, x)"]
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("depth", [2, 4])
def test_helper_chain_found_in_either_order(depth: int) -> None:
    assert [code for _, code in lint(_helper_chain(depth, False))] == ["TGL101"]
    assert [code for _, code in lint(_helper_chain(depth, True))] == ["TGL101"]


def test_helper_chain_5_deep_found_in_either_order() -> None:
    assert [code for _, code in lint(_helper_chain(5, False))] == ["TGL101"]
    assert [code for _, code in lint(_helper_chain(5, True))] == ["TGL101"]


def test_generator_is_deterministic() -> None:
    a, b = generate(random.Random(3)), generate(random.Random(3))
    assert a.source() == b.source()
    ast.parse(a.source())
