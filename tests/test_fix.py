"""``torchgradlint fix``: every fixable bad fixture is really fixed, and files are written safely.

Real files, real subprocesses, no mocks. The fixtures are copied to a temporary folder and fixed
there by one ``torchgradlint fix --unsafe-fixes`` run; then each fixed program must parse, draw
no finding of its rule from the linter, stay unchanged under a second run, and -- executed on
its real torch model under the runtime monitor (all programs in one subprocess: one torch
import) -- show no finding of its rule either.
"""

from __future__ import annotations

import ast
import codecs
import json
import os
import re
import shutil
import stat
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Dict, Optional

import pytest

from conftest import FIXTURES, ROOT
from torchgradlint.config import Config
from torchgradlint.engine import lint_file, lint_source
from fixture_marks import FixtureMarks
from torchgradlint.findings import Finding, Fix
from torchgradlint.fix import FixError, apply_fixes, fix_file, fix_source, fix_text
from torchgradlint.sourcefile import write_atomically

BAD = sorted(FIXTURES.glob("TGL*/bad_*.py"))
FIXABLE = [path for path in BAD if any(f.fix is not None for f in lint_file(str(path)))]
IDS = [f"{path.parent.name}/{path.name}" for path in FIXABLE]

# Fixes the rules produce that fix their finding but break the program or bring another bug.
# Reported to the rules' owner; strict, so that this list must shrink when a rule is corrected.
WRONG_FIXES = {
    "TGL202/bad_shared_run_epoch_no_train.py":
        "the fix (marked unsafe: the function also evaluates) puts `model.train()` in the loop "
        "shared by training and validation: validation now runs in training mode (TGL201)",
    "TGL202/bad_phase_loop_without_train.py":
        "the fix (marked unsafe: the loop also runs the val phase under no_grad) puts "
        "`model.train()` before the forward both phases share: the val phase runs in training "
        "mode (TGL201)",
    "TGL202/bad_flag_rebound_after_the_switch.py":
        "the fix (marked unsafe: the loop is shared by training and validation) puts "
        "`model.train()` before the forward of every batch: the validation batches now run in "
        "training mode (TGL201)",
}

RUNNER = r"""
import json, sys
import torch
from torchgradlint.runtime import run_path

observed = {}
for path in sys.argv[1:]:
    torch.set_grad_enabled(True)
    report = run_path(path)
    name = path.rsplit("/", 1)[-1]
    observed[path] = {
        "findings": sorted([f.line, f.code] for f in report.findings if f.filename.endswith(name)),
        "error": report.error,
    }
sys.stdout.write("\nTGL-FIX-RESULT " + json.dumps(observed) + "\n")
"""


def environment() -> Dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + [p for p in [env.get("PYTHONPATH")] if p])
    env.pop("PYTHONWARNINGS", None)
    return env


def run_cli(*args: str, cwd: Path, stdin: Optional[bytes] = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "torchgradlint", *args], cwd=str(cwd), env=environment(),
        input=stdin if stdin is not None else b"", capture_output=True, timeout=300)


def text_of(stream: bytes) -> str:
    return stream.decode("utf-8", "replace")


# --------------------------------------------------------------------------- the fixtures


class Fixed:
    def __init__(self, root: Path, first, second, snapshot, observed, steps) -> None:
        self.root = root
        self.first = first
        self.second = second
        self.snapshot = snapshot  # bytes after the first run
        self.observed = observed
        self.steps = steps  # tests/gradient_steps.py's comparison, by fixed path

    def path(self, original: Path) -> Path:
        return self.root / original.parent.name / original.name


@pytest.fixture(scope="module")
def fixed(tmp_path_factory) -> Fixed:
    root = tmp_path_factory.mktemp("fixed")
    for path in FIXABLE:
        (root / path.parent.name).mkdir(exist_ok=True)
        shutil.copyfile(path, root / path.parent.name / path.name)
    first = run_cli("fix", "--unsafe-fixes", "--isolated", str(root), cwd=root)
    snapshot = {p: p.read_bytes() for p in root.rglob("*.py")}
    second = run_cli("fix", "--unsafe-fixes", "--isolated", str(root), cwd=root)
    paths = sorted(str(p) for p in snapshot)
    result = subprocess.run([sys.executable, "-c", RUNNER, *paths], cwd=str(root),
                            env=environment(), capture_output=True, text=True, timeout=1800)
    assert result.returncode == 0, result.stderr[-4000:]
    line = [text for text in result.stdout.splitlines() if text.startswith("TGL-FIX-RESULT ")][-1]
    observed = json.loads(line[len("TGL-FIX-RESULT "):])
    pairs = [str(p) for original in FIXABLE
             for p in (original, root / original.parent.name / original.name)]
    compared = subprocess.run([sys.executable, str(ROOT / "tests" / "gradient_steps.py"), *pairs],
                              cwd=str(root), env=environment(), capture_output=True, text=True,
                              timeout=1800)
    assert compared.returncode == 0, compared.stderr[-4000:]
    steps = json.loads(compared.stdout.strip().splitlines()[-1])
    return Fixed(root, first, second, snapshot, observed, steps)


def test_every_fixable_rule_has_a_fixture():
    rules = {path.parent.name for path in FIXABLE}
    assert rules == {"TGL101", "TGL103", "TGL201", "TGL202", "TGL203", "TGL301", "TGL302"}


def test_fix_run_reports_and_exits(fixed):
    # Only findings without a fix (TGL102, TGL303 fixtures are not copied) can remain.
    assert fixed.first.returncode == 0, text_of(fixed.first.stderr)
    assert f"in {len(FIXABLE)} files; 0 remain" in text_of(fixed.first.stderr)


@pytest.mark.parametrize("original", FIXABLE, ids=IDS)
def test_fixed_fixture_parses_and_lints_clean(original, fixed):
    path = fixed.path(original)
    source = path.read_text(encoding="utf-8")
    ast.parse(source)
    assert source != original.read_text(encoding="utf-8")
    findings = lint_file(str(path))
    assert [f for f in findings if f.code == original.parent.name] == []
    assert [f for f in findings if f.fix is not None] == []


@pytest.mark.parametrize("original", FIXABLE, ids=IDS)
def test_second_fix_run_changes_nothing(original, fixed):
    path = fixed.path(original)
    assert fixed.second.returncode == 0, text_of(fixed.second.stderr)
    assert "fixed 0 findings in 0 files" in text_of(fixed.second.stderr)
    assert path.read_bytes() == fixed.snapshot[path]


@pytest.mark.parametrize("original", FIXABLE, ids=IDS)
def test_fixed_fixture_runs_without_the_bug(original, fixed):
    observed = fixed.observed[str(fixed.path(original))]
    codes = {code for _, code in observed["findings"]}
    assert original.parent.name not in codes, observed


@pytest.mark.parametrize("original", [
    pytest.param(path, marks=pytest.mark.xfail(strict=True, reason=WRONG_FIXES[ident]))
    if ident in WRONG_FIXES else path
    for path, ident in zip(FIXABLE, IDS)
], ids=IDS)
def test_fixed_fixture_runs_cleanly_with_no_new_bug(original, fixed):
    observed = fixed.observed[str(fixed.path(original))]
    assert observed["error"] is None, observed["error"]
    marks = FixtureMarks.parse(original.read_text(encoding="utf-8"))
    before = {code for _, code in marks.runtime}
    after = {code for _, code in observed["findings"]}
    assert after <= before, f"new at run time: {sorted(after - before)}"


# Rules whose fix must leave every optimizer step's gradients exactly as they were: no_grad
# around an evaluation, .detach() of a leak into a model the step does not train, .detach() of an
# accumulated value. (TGL2xx fixes change a mode, which is the point: they must train the same
# models, with other numbers; a TGL103 program crashed before its fix.)
SAME_GRADIENTS = {"TGL101", "TGL301", "TGL302"}


@pytest.mark.parametrize("original", FIXABLE, ids=IDS)
def test_fixed_fixture_trains_the_same_models(original, fixed):
    compared = fixed.steps[str(fixed.path(original))]
    assert compared["after_error"] is None, compared
    if compared["before_error"] is None:
        assert compared["training"] is None, compared


def _keeps_gradients(path: Path) -> bool:
    """Every fix is of a rule in SAME_GRADIENTS, and a TGL301 fix is a safe one (an unsafe one
    runs a model with Dropout a second time: other masks, other gradients)."""
    fixes = [f for f in lint_file(str(path)) if f.fix is not None]
    return all(f.code in SAME_GRADIENTS and (f.fix.safe or f.code != "TGL301") for f in fixes)


GRADIENT_KEEPING = [(path, ident) for path, ident in zip(FIXABLE, IDS) if _keeps_gradients(path)]


@pytest.mark.parametrize("original", [path for path, _ in GRADIENT_KEEPING],
                         ids=[ident for _, ident in GRADIENT_KEEPING])
def test_fixed_fixture_steps_get_the_same_gradients(original, fixed):
    compared = fixed.steps[str(fixed.path(original))]
    if original.parent.name.startswith("TGL3"):
        assert compared["steps"][0] > 0, compared  # training programs: something to compare
    assert compared["gradients"] is None, compared


def _signatures(findings):
    return Counter((f.code, re.sub(r"\d+", "#", f.message)) for f in findings)


@pytest.mark.parametrize("original", FIXABLE, ids=IDS)
def test_a_fix_never_produces_a_new_finding(original, fixed):
    before = _signatures(lint_file(str(original)))
    after = _signatures(lint_file(str(fixed.path(original))))
    assert not after - before, sorted(after - before)


def test_the_fix_cases_are_fixed_by_safe_fixes(tmp_path):
    # ../shared/fix-cases: the leak is repaired where detaching the call would break the program
    for name in ("bad_shared_d_output_for_g_and_d.py", "bad_wgan_div_critic_penalty.py"):
        source = (FIXTURES / "TGL301" / name).read_text(encoding="utf-8")
        outcome = fix_text(source, name)
        assert outcome.remaining == [] and outcome.source != source, name
    shared = fix_text((FIXTURES / "TGL301" / "bad_shared_d_output_for_g_and_d.py").read_text(),
                      "shared.py").source
    assert "D_gen = discriminator(gen_imgs)  # expect" in shared  # the generator's forward stays
    assert "    D_gen = discriminator(gen_imgs.detach())\n    d_loss =" in shared
    wgan = fix_text((FIXTURES / "TGL301" / "bad_wgan_div_critic_penalty.py").read_text(),
                    "wgan.py").source
    assert "    fake_imgs = fake_imgs.detach().requires_grad_()\n" \
           "    fake_validity = discriminator(fake_imgs)" in wgan


# --------------------------------------------------------------------------- one pass


def test_formatting_and_comments_are_kept():
    source = (
        "# header comment\n"
        "import torch\n"
        "\n"
        "\n"
        "def evaluate(model,   loader):   # odd spacing stays\n"
        "    model.eval()\n"
        "    total = 0.0\n"
        "    # the evaluation loop\n"
        "    for x, y in loader:  # trailing comment\n"
        "        out = model(x)   # forward\n"
        "\n"
        "        total += (out.argmax(1) == y).sum().item()\n"
        "    return total\n"
    )
    findings = lint_source(source)
    assert [f.code for f in findings] == ["TGL101"]
    assert fix_source(source, findings) == source  # unsafe: skipped by default
    assert fix_source(source, findings, unsafe=True) == (
        "# header comment\n"
        "import torch\n"
        "\n"
        "\n"
        "def evaluate(model,   loader):   # odd spacing stays\n"
        "    model.eval()\n"
        "    total = 0.0\n"
        "    # the evaluation loop\n"
        "    with torch.no_grad():\n"
        "        for x, y in loader:  # trailing comment\n"
        "            out = model(x)   # forward\n"
        "\n"
        "            total += (out.argmax(1) == y).sum().item()\n"
        "    return total\n"
    )


def test_one_pass_nests_wraps_inserts_and_methods():
    source = ("def f(y):\n"
              "    # loop\n"
              "    for x in y:  # c\n"
              "        s += g(x) * 2  # acc\n"
              "    return s\n")
    fixes = [
        Fix("wrap", ((3, 4), (4, 21)), "torch.no_grad()", imports=("torch",)),
        Fix("wrap", ((3, 4), (4, 21)), "torch.no_grad()", imports=("torch",)),  # once
        Fix("wrap", ((4, 8), (4, 21)), "torch.no_grad()"),  # inside the other: nothing to do
        Fix("insert-before", ((3, 4), (4, 21)), "model.eval()"),
        Fix("method", ((4, 13), (4, 21)), "item"),
    ]
    new, done = apply_fixes(source, fixes)
    assert len(done) == 4
    assert new == ("import torch\n"
                   "def f(y):\n"
                   "    # loop\n"
                   "    model.eval()\n"
                   "    with torch.no_grad():\n"
                   "        for x in y:  # c\n"
                   "            s += (g(x) * 2).item()  # acc\n"
                   "    return s\n")


def test_one_pass_splits_lines_and_suites():
    source = "a = 1; b = f(x); c = 2  # keep\nfor x in y: d = f(x); e = 2  # c\n"
    new, _ = apply_fixes(source, [
        Fix("wrap", ((1, 7), (1, 15)), "ctx()"),
        Fix("wrap", ((2, 12), (2, 20)), "ctx()"),
        Fix("insert-before", ((2, 22), (2, 27)), "m.eval()"),
    ])
    assert new == ("a = 1\n"
                   "with ctx():\n"
                   "    b = f(x)\n"
                   "c = 2  # keep\n"
                   "for x in y:\n"
                   "    with ctx():\n"
                   "        d = f(x)\n"
                   "    m.eval()\n"
                   "    e = 2  # c\n")


def test_one_pass_parenthesizes_and_decorates():
    source = ("t = a + b\nu = x\nv = -x\nw = (a +\n     b)\n"
              "class A:\n    @staticmethod\n    def f(x):\n        return x\n")
    new, _ = apply_fixes(source, [
        Fix("method", ((1, 4), (1, 9)), "item"),
        Fix("method", ((2, 4), (2, 5)), "item"),
        Fix("call", ((3, 4), (3, 6))),
        Fix("call", ((3, 0), (3, 3))),  # a target that is no expression: left out
        Fix("method", ((4, 5), (5, 6)), "detach"),
        Fix("decorate", ((8, 4), (9, 16)), "torch.no_grad()", imports=("torch",)),
    ])
    assert new == ("import torch\n"
                   "t = (a + b).item()\nu = x.item()\nv = (-x)()\nw = (a +\n     b).detach()\n"
                   "class A:\n    @staticmethod\n    @torch.no_grad()\n    def f(x):\n"
                   "        return x\n")


def test_what_cannot_be_placed_is_left_alone():
    source = "if a:\n    pass\nelif b:\n    pass\n"
    new, done = apply_fixes(source, [
        Fix("wrap", ((3, 0), (4, 8)), "ctx()"),
        Fix("insert-before", ((3, 0), (4, 8)), "m.eval()"),
        Fix("method", ((9, 0), (9, 3)), "item"),
    ])
    assert (new, done) == (source, [])


def test_a_fix_that_would_not_compile_is_left_out():
    source = "v = -x\nw = y\n"
    with pytest.raises(FixError):
        apply_fixes(source, [Fix("call", ((1, 0), (1, 1)))])  # `v() = -x`
    findings = [Finding("TGL203", 1, 0, "m", Fix("call", ((1, 0), (1, 1)))),
                Finding("TGL203", 2, 4, "m", Fix("call", ((2, 4), (2, 5))))]
    assert fix_source(source, findings) == "v = -x\nw = y()\n"


def test_no_tensor_method_on_a_literal():
    # `.item()` of a list or tuple can only raise: such a fix is left out, the finding stays.
    source = "history.append((s, a, loss))\nrows.append([p, loss])\n"
    new, done = apply_fixes(source, [
        Fix("method", ((1, 15), (1, 27)), "item"),
        Fix("method", ((2, 12), (2, 21)), "item"),
    ])
    assert (new, done) == (source, [])


def test_import_torch_added_only_when_not_bound():
    source = ('"""Evaluate."""\nfrom torch import nn\n\n\ndef evaluate(model, x):\n'
              '    model.eval()\n    return model(x)\n')
    fixed = fix_text(source, unsafe=True).source
    assert fixed.startswith('"""Evaluate."""\nfrom torch import nn\nimport torch\n\n\n')
    assert "    with torch.no_grad():\n        return model(x)\n" in fixed
    aliased = source.replace("from torch import nn", "import torch as T")
    fixed = fix_text(aliased, unsafe=True).source
    assert "import torch\n" not in fixed and "    with T.no_grad():\n" in fixed


def test_a_finding_fixed_by_an_earlier_round_gets_no_second_fix():
    # no_grad around the loop also ends the accumulation of graphs: no `.item()` is added.
    source = ("import torch\n\n\ndef evaluate(model, batches, criterion):\n"
              "    model.eval()\n    val_loss = 0.0\n    for x, y in batches:\n"
              "        pred = model(x)\n        val_loss += criterion(pred, y)\n"
              "    return val_loss / len(batches)\n")
    assert sorted(f.code for f in lint_source(source)) == ["TGL101", "TGL302"]
    outcome = fix_text(source, unsafe=True)
    assert ".item()" not in outcome.source and "with torch.no_grad():" in outcome.source
    assert (outcome.fixed, outcome.remaining) == (2, [])


def test_selection_limits_what_is_fixed():
    source = ("import torch\n\n\ndef f(model):\n    model.eval\n    with torch.no_grad:\n"
              "        pass\n")
    config = Config(select=("TGL203",))
    outcome = fix_text(source, config=config)
    assert "model.eval()" in outcome.source and "with torch.no_grad:" in outcome.source


# --------------------------------------------------------------------------- files

TGL103 = "import torch\n\nwith torch.no_grad:\n    pass\n"
TGL103_FIXED = "import torch\n\nwith torch.no_grad():\n    pass\n"


def test_crlf_bom_and_latin1_cookie_are_kept(tmp_path):
    crlf = tmp_path / "crlf.py"
    crlf.write_bytes(TGL103.replace("\n", "\r\n").encode())
    bom = tmp_path / "bom.py"
    bom.write_bytes(codecs.BOM_UTF8 + TGL103.encode())
    latin = tmp_path / "latin.py"
    latin.write_bytes(("# -*- coding: latin-1 -*-\nimport torch\n\n\ndef f(model):\n"
                       "    label = 'é'; model.eval  # é\n").encode("latin-1"))
    for path in (crlf, bom, latin):
        result = fix_file(str(path))
        assert result.written and result.fixed == 1 and not result.problem, result
    assert crlf.read_bytes() == TGL103_FIXED.replace("\n", "\r\n").encode()
    assert bom.read_bytes() == codecs.BOM_UTF8 + TGL103_FIXED.encode()
    assert latin.read_bytes() == ("# -*- coding: latin-1 -*-\nimport torch\n\n\ndef f(model):\n"
                                  "    label = 'é'; model.eval()  # é\n").encode("latin-1")
    for path in (crlf, bom, latin):
        assert not fix_file(str(path)).changed


def test_file_mode_is_kept_and_temporary_files_are_gone(tmp_path):
    path = tmp_path / "script.py"
    path.write_text(TGL103)
    path.chmod(0o754)
    assert fix_file(str(path)).written
    assert stat.S_IMODE(path.stat().st_mode) == 0o754
    assert path.read_text() == TGL103_FIXED
    assert sorted(p.name for p in tmp_path.iterdir()) == ["script.py"]


def test_symbolic_link_is_followed_and_kept(tmp_path):
    target = tmp_path / "real.py"
    target.write_text(TGL103)
    link = tmp_path / "link.py"
    link.symlink_to(target)
    assert fix_file(str(link)).written
    assert link.is_symlink() and target.read_text() == TGL103_FIXED


def test_file_changed_on_disk_is_not_overwritten(tmp_path):
    path = tmp_path / "script.py"
    path.write_text(TGL103)
    data, before = path.read_bytes(), path.stat()
    path.write_text(TGL103 + "x = 1\n")  # someone saves the file meanwhile
    reason = write_atomically(str(path), TGL103_FIXED.encode(), data, before)
    assert reason is not None and "changed on disk" in reason
    assert path.read_text() == TGL103 + "x = 1\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["script.py"]


def test_cli_refuses_a_read_only_file(tmp_path):
    path = tmp_path / "script.py"
    path.write_text(TGL103)
    path.chmod(0o444)
    try:
        result = run_cli("fix", "--isolated", "script.py", cwd=tmp_path)
        assert result.returncode == 2
        assert "read-only" in text_of(result.stderr)
        assert path.read_text() == TGL103
        assert "script.py:3:6: TGL103" in text_of(result.stdout)  # still there
    finally:
        path.chmod(0o644)


def test_cli_diff_writes_nothing(tmp_path):
    path = tmp_path / "script.py"
    path.write_text(TGL103)
    result = run_cli("fix", "--diff", "--isolated", "script.py", cwd=tmp_path)
    assert result.returncode == 1
    assert text_of(result.stdout) == (
        "--- a/script.py\n+++ b/script.py\n@@ -1,4 +1,4 @@\n import torch\n \n"
        "-with torch.no_grad:\n+with torch.no_grad():\n     pass\n")
    assert "would fix 1 finding in 1 file; 0 remain" in text_of(result.stderr)
    assert path.read_text() == TGL103


def test_cli_skips_unsafe_fixes_and_noqa_and_reports_what_remains(tmp_path):
    source = ("import torch\n\n\ndef evaluate(model, x):\n    model.eval()\n"
              "    with torch.no_grad:  # noqa: TGL103\n        pass\n"
              "    with torch.enable_grad:\n        pass\n"
              "    return model(x)\n")
    path = tmp_path / "script.py"
    path.write_text(source)
    result = run_cli("fix", "--isolated", ".", cwd=tmp_path)
    fixed = source.replace("torch.enable_grad:", "torch.enable_grad():")
    assert path.read_text() == fixed
    assert result.returncode == 1
    assert text_of(result.stdout).startswith("script.py:10:12: TGL101 ")
    assert "fixed 1 finding in 1 file; 1 remain (1 with an unsafe fix: --unsafe-fixes)" in \
        text_of(result.stderr)

    result = run_cli("fix", "--isolated", "--unsafe-fixes", ".", cwd=tmp_path)
    assert result.returncode == 0, text_of(result.stderr)
    assert path.read_text() == fixed.replace(
        "    return model(x)\n", "    with torch.no_grad():\n        return model(x)\n")
    assert "# noqa: TGL103" in path.read_text() and "with torch.no_grad:  #" in path.read_text()


def test_cli_select_stdin_and_errors(tmp_path):
    path = tmp_path / "script.py"
    path.write_text("import torch\n\n\ndef f(model):\n    model.eval\n    with torch.no_grad:\n"
                    "        pass\n")
    result = run_cli("fix", "--isolated", "--select", "TGL203", "script.py", cwd=tmp_path)
    assert result.returncode == 0, text_of(result.stderr)
    assert "model.eval()" in path.read_text() and "no_grad:" in path.read_text()

    result = run_cli("fix", "--isolated", "-", cwd=tmp_path, stdin=TGL103.encode())
    assert (result.returncode, text_of(result.stdout)) == (0, TGL103_FIXED)

    result = run_cli("fix", "--isolated", "missing.py", cwd=tmp_path)
    assert result.returncode == 2 and "missing.py" in text_of(result.stderr)
