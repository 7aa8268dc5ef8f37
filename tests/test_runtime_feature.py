"""The runtime monitor as a user feature: the pytest plugin, the ``@watched`` decorator, the
allow-lists, and what the monitor must not do (keep graphs alive, import torch when not asked).

The plugin is driven for real with ``pytester`` (in-process: torch is imported once) on small
test files written to a temporary directory; their ``# runtime: TGL...`` comments mark the lines
where the failure report of ``pytest --tgl-runtime`` must point, test by test. Real torch, CPU,
tiny models, no mocks.
"""

import ast
import gc
import os
import re
import subprocess
import sys
import textwrap
import warnings
import weakref

import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

from torchgradlint import engine  # noqa: E402
from torchgradlint.runtime import (  # noqa: E402
    FindingsError, IgnoreList, RuntimeFinding, RuntimeFindingWarning, watch, watched)

pytest_plugins = ["pytester"]

PLUGIN = "torchgradlint.runtime.pytest_plugin"
# Load the plugin by module name whether or not the pytest11 entry point is installed (blocking
# the entry point's name avoids registering the module twice). Hypothesis' plugin is left out:
# every in-process run would import hypothesis again (seconds).
LOAD = ("-p", "no:torchgradlint", "-p", PLUGIN, "-p", "no:cacheprovider",
        "-p", "no:hypothesispytest")
FINDING_LINE = re.compile(r"^(\S+):(\d+): (TGL\d{3}) ", re.MULTILINE)
MARK = re.compile(r"#\s*runtime:\s*(TGL\d{3}(?:\s*,\s*TGL\d{3})*)")

HEADER = """\
import pytest
import torch
from torch import nn

torch.manual_seed(0)
"""

EVAL_BUG = HEADER + """
def test_accuracy_without_no_grad():
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    model.eval()
    correct = 0
    for _ in range(3):
        x, y = torch.randn(5, 4), torch.randint(0, 2, (5,))
        correct += int((model(x).argmax(1) == y).sum())  # runtime: TGL101
    assert correct >= 0
"""

CLEAN = HEADER + """
def test_train_then_evaluate():
    model = nn.Sequential(nn.Linear(4, 8), nn.Dropout(0.2), nn.BatchNorm1d(8), nn.Linear(8, 2))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    data = [(torch.randn(6, 4), torch.randint(0, 2, (6,))) for _ in range(3)]
    for epoch in range(2):
        model.train()
        running = 0.0
        for x, y in data:
            opt.zero_grad()
            loss = nn.functional.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
            running += loss.item()
        model.eval()
        with torch.no_grad():
            correct = sum(int((model(x).argmax(1) == y).sum()) for x, y in data)
    assert correct >= 0 and running > 0
"""

# One test per code; each must fail with exactly the findings its marks name.
EACH_CODE = HEADER + """
def test_tgl101_eval_with_autograd():
    model = nn.Linear(4, 2)
    model.eval()
    scores = [model(torch.randn(3, 4)).softmax(1).max().item() for _ in range(2)]  # runtime: TGL101
    assert len(scores) == 2


def test_tgl201_eval_in_training_mode():
    model = nn.Sequential(nn.Linear(4, 8), nn.Dropout(0.5), nn.Linear(8, 2))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x = torch.randn(6, 4)
    opt.zero_grad()
    model(x).pow(2).mean().backward()
    opt.step()
    with torch.no_grad():
        val = model(x)  # runtime: TGL201
    assert val.shape == (6, 2)


def test_tgl202_training_resumes_in_eval_mode():
    model = nn.Sequential(nn.Linear(4, 8), nn.Dropout(0.5), nn.Linear(8, 2))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x = torch.randn(6, 4)
    for epoch in range(2):
        for _ in range(2):
            opt.zero_grad()
            model(x).pow(2).mean().backward()  # runtime: TGL202
            opt.step()
        model.eval()
        with torch.no_grad():
            model(x)


def test_tgl301_undetached_fake():
    netG = nn.Sequential(nn.Linear(2, 4), nn.Tanh())
    netD = nn.Sequential(nn.Linear(4, 1), nn.Sigmoid())
    optD = torch.optim.SGD(netD.parameters(), lr=0.1)
    optG = torch.optim.SGD(netG.parameters(), lr=0.1)
    bce = nn.BCELoss()
    for _ in range(2):
        fake = netG(torch.randn(8, 2))
        optD.zero_grad()
        lossD_real = bce(netD(torch.randn(8, 4)), torch.ones(8, 1))
        lossD = lossD_real + bce(netD(fake), torch.zeros(8, 1))  # runtime: TGL301
        lossD.backward(retain_graph=True)
        optD.step()
        optG.zero_grad()
        lossG = bce(netD(fake), torch.ones(8, 1))
        lossG.backward()
        optG.step()


def test_tgl302_loss_accumulated_with_graph():
    model = nn.Linear(4, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    total = 0
    for _ in range(4):
        opt.zero_grad()
        loss = model(torch.randn(5, 4)).pow(2).mean()
        loss.backward()
        opt.step()
        total += loss  # runtime: TGL302
    assert total.requires_grad
"""

# The model is chosen at run time (a registry dict, getattr on a module): the linter cannot know
# that the callee is a model, and stays silent; the run shows the bug.
UNDECIDABLE = HEADER + """
import sys

REGISTRY = {}


def register(cls):
    REGISTRY[cls.__name__.lower()] = cls
    return cls


@register
class Mlp(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 2))

    def forward(self, x):
        return self.body(x)


class Classifier(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Dropout(0.5), nn.Linear(16, 2))

    def forward(self, x):
        return self.body(x)


def make(name):
    return getattr(sys.modules[__name__], name)()


def test_registry_model_predictions():
    clf = REGISTRY["mlp"]()
    x = torch.randn(8, 4)
    probs = clf(x).softmax(1)  # runtime: TGL101
    assert probs.shape == (8, 2)


def test_getattr_model_predictions_are_stable():
    clf = make("Classifier")
    x = torch.randn(8, 4)
    with torch.no_grad():
        first = clf(x)  # runtime: TGL201
        second = clf(x)  # runtime: TGL201
    assert first.shape == second.shape
"""


# --------------------------------------------------------------------------- helpers

@pytest.fixture(autouse=True)
def forget_inner_failures():
    """An in-process pytest run that fails a test stores its traceback in ``sys.last_*`` (for
    post-mortem debugging): its frames would keep the inner test's tensors and graphs alive."""
    yield
    for name in ("last_type", "last_value", "last_traceback", "last_exc"):
        if hasattr(sys, name):
            delattr(sys, name)


@pytest.fixture(scope="module", autouse=True)
def torch_lazy_imports_done():
    """Run the test sources once here first. pytester's in-process runs remove the modules they
    imported when they end, and torch imports some lazily (``torch._dynamo`` on the first
    optimizer step), whose operator libraries cannot be registered a second time."""
    import types

    import torch._dynamo  # noqa: F401

    for number, source in enumerate((EVAL_BUG, CLEAN, EACH_CODE, UNDECIDABLE)):
        module = types.ModuleType(f"_tgl_warmup_{number}")
        sys.modules[module.__name__] = module
        try:
            exec(compile(source, f"<warm-up {number}>", "exec"), module.__dict__)
            for name, func in list(module.__dict__.items()):
                if name.startswith("test_"):
                    with watch():
                        func()
        finally:
            del sys.modules[module.__name__]
            module.__dict__.clear()
    gc.collect()


def marks(source):
    """``{test name: [(line, code), ...]}`` from the ``# runtime:`` comments of ``source``."""
    lines = source.splitlines()
    result = {}
    for node in ast.parse(source).body:
        if isinstance(node, ast.FunctionDef) and node.name.startswith("test"):
            found = []
            for number in range(node.lineno, node.end_lineno + 1):
                match = MARK.search(lines[number - 1])
                if match:
                    found += [(number, c.strip()) for c in match.group(1).split(",")]
            result[node.name] = sorted(found)
    return result


def observed(reprec, filename):
    """``{test name: [(line, code), ...]}`` parsed from the failure reports of a run."""
    result = {}
    for rep in reprec.getreports("pytest_runtest_logreport"):
        if rep.when != "call":
            continue
        name = rep.nodeid.split("::")[-1]
        text = rep.longreprtext if rep.failed else ""
        result[name] = sorted({(int(line), code) for path, line, code in FINDING_LINE.findall(text)
                               if path == filename})
    return result


def run(pytester, *args):
    return pytester.inline_run(*LOAD, *args)


def line_of(source, marker):
    return next(i for i, text in enumerate(source.splitlines(), 1) if marker in text)


# --------------------------------------------------------------------------- the plugin

def test_eval_loop_without_no_grad_fails_with_a_readable_report(pytester):
    pytester.makepyfile(test_eval=EVAL_BUG)
    result = pytester.runpytest(*LOAD, "--tgl-runtime")
    result.assert_outcomes(failed=1)
    line = line_of(EVAL_BUG, "# runtime: TGL101")
    result.stdout.fnmatch_lines([
        "*torchgradlint runtime monitor: 1 finding (TGL101)",
        f"test_eval.py:{line}: TGL101 forward of Sequential ran with autograd enabled*",
        "    correct += int((model(x).argmax(1) == y).sum())  # runtime: TGL101",
        "*--tgl-runtime-ignore=TGL101*",
        "*1 test watched, 1 failed because of findings; 1 finding reported*",
        "FAILED test_eval.py::test_accuracy_without_no_grad - Failed: torchgradlint*",
    ])


def test_without_the_flag_nothing_is_watched(pytester):
    pytester.makepyfile(test_eval=EVAL_BUG)
    result = pytester.runpytest(*LOAD)
    result.assert_outcomes(passed=1)
    assert "torchgradlint runtime monitor" not in result.stdout.str()
    assert "TGL101" not in result.stdout.str()


def test_clean_test_passes(pytester):
    pytester.makepyfile(test_clean=CLEAN)
    result = pytester.runpytest(*LOAD, "--tgl-runtime")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["torchgradlint runtime monitor: on (allowed: nothing)",
                                 "*1 test watched, 0 failed because of findings*"])


def test_each_code_is_detected_in_a_user_test(pytester):
    path = pytester.makepyfile(test_codes=EACH_CODE)
    reprec = run(pytester, "--tgl-runtime")
    expected = marks(EACH_CODE)
    assert {code for found in expected.values() for _, code in found} == {
        "TGL101", "TGL201", "TGL202", "TGL301", "TGL302"}
    assert observed(reprec, path.name) == expected
    reprec.assertoutcome(failed=len(expected))


def test_static_analysis_cannot_decide_but_the_run_can(pytester):
    path = pytester.makepyfile(test_registry=UNDECIDABLE)
    assert engine.lint_source(UNDECIDABLE, str(path)) == []
    reprec = run(pytester, "--tgl-runtime")
    expected = marks(UNDECIDABLE)
    assert all(expected.values())
    assert observed(reprec, path.name) == expected


def test_allow_list_by_code_on_the_command_line(pytester):
    pytester.makepyfile(test_eval=EVAL_BUG)
    run(pytester, "--tgl-runtime", "--tgl-runtime-ignore=TGL302,TGL101").assertoutcome(passed=1)
    run(pytester, "--tgl-runtime", "--tgl-runtime-ignore=TGL2").assertoutcome(failed=1)
    run(pytester, "--tgl-runtime", "--tgl-runtime-ignore", "TGL1").assertoutcome(passed=1)


def test_allow_list_by_location_in_the_ini_file(pytester):
    pytester.makepyfile(test_eval=EVAL_BUG)
    line = line_of(EVAL_BUG, "# runtime: TGL101")
    for patterns, outcome in [
        (f"test_eval.py:{line}", "passed"),
        (f"test_eval.py:{line + 1}", "failed"),   # another line: still reported
        ("test_e*.py", "passed"),                 # a glob on the file name
        (f"*/test_eval.py:{line}:TGL101", "passed"),
        (f"test_eval.py:{line}:TGL201", "failed"),  # another code at that line
        ("other/*\n    test_eval.py:TGL1", "passed"),  # several lines, path:code prefix
    ]:
        pytester.makeini(f"[pytest]\ntgl_runtime_ignore =\n    {patterns}\n")
        run(pytester, "--tgl-runtime").assertoutcome(**{outcome: 1})


def test_markers_allow_by_code_or_switch_the_monitor_off(pytester):
    path = pytester.makepyfile(test_marked=HEADER + """
from torchgradlint.runtime import watch


def _evaluate_with_autograd():
    model = nn.Linear(4, 2)
    return model(torch.randn(3, 4))  # runtime: TGL101


@pytest.mark.tgl_runtime(ignore=["TGL101"])
def test_allowed_by_code():
    _evaluate_with_autograd()


@pytest.mark.tgl_runtime(ignore="test_marked.py:LINE")
def test_allowed_by_location():
    _evaluate_with_autograd()


@pytest.mark.tgl_runtime(ignore=["TGL201"])
def test_other_code_allowed():
    _evaluate_with_autograd()


@pytest.mark.tgl_runtime(off=True)
def test_off_runs_its_own_watch():
    with watch() as report:
        _evaluate_with_autograd()
    assert [f.code for f in report.findings] == ["TGL101"]


def test_own_watch_without_off_gets_a_hint():
    with watch():
        pass


@pytest.mark.tgl_runtime(off=True)
class TestUnwatched:
    def test_in_class(self):
        _evaluate_with_autograd()

    @pytest.mark.tgl_runtime(off=False)
    def test_closest_marker_wins(self):
        _evaluate_with_autograd()
""")
    source = path.read_text()
    path.write_text(source.replace("LINE", str(line_of(source, "# runtime: TGL101"))))
    reprec = run(pytester, "--tgl-runtime")
    outcomes = {rep.nodeid.split("::", 1)[1]: rep.outcome
                for rep in reprec.getreports("pytest_runtest_logreport") if rep.when == "call"}
    assert outcomes == {
        "test_allowed_by_code": "passed",
        "test_allowed_by_location": "passed",
        "test_other_code_allowed": "failed",
        "test_off_runs_its_own_watch": "passed",
        "test_own_watch_without_off_gets_a_hint": "failed",
        "TestUnwatched::test_in_class": "passed",
        "TestUnwatched::test_closest_marker_wins": "failed",
    }
    hint = [rep for rep in reprec.getfailures() if rep.nodeid.endswith("hint")][0]
    assert "tgl_runtime(off=True)" in dict(hint.sections)["Captured torchgradlint call"]


def test_a_failing_test_keeps_its_failure_and_gets_the_findings_attached(pytester):
    path = pytester.makepyfile(test_fails=HEADER + """
def test_wrong_shape():
    model = nn.Linear(4, 2)
    assert model(torch.randn(3, 4)).shape == (3, 3)
""")
    line = line_of(path.read_text(), "assert model(")
    result = pytester.runpytest(*LOAD, "--tgl-runtime")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([
        "E       assert torch.Size([3, 2]) == (3, 3)",
        "*Captured torchgradlint call*",
        f"test_fails.py:{line}: TGL101 forward of Linear*",
    ])


def test_fixture_code_is_watched_with_the_test(pytester):
    conftest = pytester.makeconftest("""
import pytest
import torch
from torch import nn


@pytest.fixture
def predictions():
    model = nn.Linear(4, 2)
    model.eval()
    return model(torch.randn(3, 4))  # runtime: TGL101
""")
    pytester.makepyfile(test_fixture="def test_uses_fixture(predictions):\n    assert True\n")
    result = pytester.runpytest(*LOAD, "--tgl-runtime")
    result.assert_outcomes(failed=1)
    line = line_of(conftest.read_text(), "# runtime: TGL101")
    result.stdout.fnmatch_lines([f"conftest.py:{line}: TGL101 *"])


def test_marker_with_unknown_arguments_is_an_error(pytester):
    pytester.makepyfile(test_bad_marker=HEADER + """
@pytest.mark.tgl_runtime("TGL101")
def test_positional():
    pass
""")
    result = pytester.runpytest(*LOAD, "--tgl-runtime")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*takes the keyword arguments ignore=* and off=True/False only*"])


def test_entry_point_loads_the_plugin(pytester):
    from importlib.metadata import entry_points

    points = [ep for ep in entry_points(group="pytest11") if ep.value == PLUGIN]
    if not points:
        pytest.skip("the pytest11 entry point is not installed (pyproject.toml; pip install -e .)")
    assert points[0].name == "torchgradlint"
    pytester.makepyfile(test_eval=EVAL_BUG)
    pytester.runpytest(*LOAD[4:], "--tgl-runtime").assert_outcomes(failed=1)
    pytester.runpytest(*LOAD[4:], "-p", "no:torchgradlint").assert_outcomes(passed=1)


def test_plugin_never_imports_torch_unless_asked(tmp_path):
    (tmp_path / "test_plain.py").write_text(
        "import sys\n\ndef test_plain():\n    assert sys.modules.get('torch') is None\n")
    env = dict(os.environ, PYTEST_DISABLE_PLUGIN_AUTOLOAD="1")
    env.pop("PYTEST_ADDOPTS", None)

    def pytest_run(*args, hide_torch=False):
        # hide_torch: as if torch were not installed (``import torch`` raises ImportError)
        code = ("import sys\nif %r: sys.modules['torch'] = None\nimport pytest\n"
                "sys.exit(pytest.main(%r))" % (hide_torch, [*LOAD, "-q", *args, str(tmp_path)]))
        return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              env=env, cwd=str(tmp_path), timeout=120)

    plain = pytest_run()
    assert plain.returncode == 0, plain.stdout + plain.stderr
    without_torch = pytest_run(hide_torch=True)
    assert without_torch.returncode == 0, without_torch.stdout + without_torch.stderr
    asked = pytest_run("--tgl-runtime", hide_torch=True)
    assert asked.returncode == 4  # pytest's usage error
    assert "--tgl-runtime needs PyTorch" in asked.stderr
    code = f"import sys, {PLUGIN}, torchgradlint.runtime; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


# --------------------------------------------------------------------------- the decorator

def _line(offset=0):
    return sys._getframe(1).f_lineno + offset


def test_watched_raises_with_the_findings():
    model = nn.Linear(4, 2)

    @watched
    def evaluate(batches):
        return [model(x).argmax(1) for x in batches]

    line = _line(-2)
    with pytest.raises(FindingsError) as info:
        evaluate([torch.randn(3, 4)])
    assert info.value.findings == evaluate.last_report.findings
    assert [(f.filename, f.line, f.code) for f in info.value.findings] == [
        (__file__, line, "TGL101")]
    assert f"{__file__}:{line}: TGL101 forward of Linear" in str(info.value)
    assert "in test_watched_raises_with_the_findings.<locals>.evaluate()" in str(info.value)


def test_watched_warn_record_and_ignore():
    model = nn.Linear(4, 2)

    @watched(on_finding="warn")
    def predict(x):
        return model(x)

    line = _line(-2)
    with pytest.warns(RuntimeFindingWarning) as caught:
        out = predict(torch.randn(3, 4))
    assert out.shape == (3, 2)
    assert [(w.filename, w.lineno) for w in caught] == [(__file__, line)]
    assert str(caught[0].message).startswith("TGL101 forward of Linear")

    recorded = watched(on_finding="record")(predict.__wrapped__)
    recorded(torch.randn(3, 4))
    assert [f.code for f in recorded.last_report.findings] == ["TGL101"]

    quiet = watched(ignore=["TGL101"])(predict.__wrapped__)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        quiet(torch.randn(3, 4))
    assert quiet.last_report.findings == []

    with torch.no_grad():
        clean = watched(predict.__wrapped__)
        clean(torch.randn(3, 4))
    assert clean.last_report.findings == []


def test_watched_inside_a_watch_defers_to_it_and_exceptions_propagate():
    model = nn.Linear(4, 2)

    @watched
    def predict(x):
        return model(x)

    with watch() as report:
        predict(torch.randn(3, 4))
    assert predict.last_report is None
    assert [f.code for f in report.findings] == ["TGL101"]

    @watched
    def broken():
        model(torch.randn(3, 4))
        raise KeyError("own error")

    with pytest.raises(KeyError):
        broken()
    assert [f.code for f in broken.last_report.findings] == ["TGL101"]
    with watch():  # the failed call ended its watch
        pass

    with pytest.raises(ValueError):
        watched(on_finding="explode")
    with pytest.raises(TypeError):
        @watched
        def gen():
            yield model


def test_ignore_list_patterns(tmp_path):
    inside = str(tmp_path / "pkg" / "train.py")
    outside = os.path.join(os.path.dirname(str(tmp_path)), "elsewhere", "train.py")
    f = RuntimeFinding("TGL201", inside, 12, "m")
    g = RuntimeFinding("TGL101", outside, 7, "m")

    def allowed(*patterns):
        ignore = IgnoreList(patterns, root=tmp_path)
        return [ignore.matches(f), ignore.matches(g)]

    assert allowed() == [False, False] and not IgnoreList([])
    assert allowed("TGL201") == [True, False]
    assert allowed("tgl2, TGL10") == [True, True]
    assert allowed("pkg") == [True, False]  # a directory
    assert allowed("pkg/*.py") == [True, False]  # relative to the root
    assert allowed("train.py:7") == [False, True]  # a bare name matches any directory
    assert allowed("*/elsewhere/*:TGL101") == [False, True]  # absolute paths
    assert allowed("pkg/train.py:12:TGL201", "pkg/train.py:12:TGL101") == [True, False]
    assert allowed("*:12") == [True, False]


@pytest.mark.parametrize("pattern", ["TGL109", "tgl9", "pkg/train.py:TGL999", "x.py:3:TGL404"])
def test_ignore_list_rejects_unknown_codes_like_the_cli(pattern, tmp_path):
    with pytest.raises(ValueError, match="unknown rule code or prefix"):
        IgnoreList([pattern], root=tmp_path)
    with pytest.raises(ValueError, match="unknown rule code or prefix"):
        watched(ignore=[pattern])


def test_allow_list_with_an_unknown_code_is_a_usage_error(pytester):
    pytester.makepyfile(test_eval=EVAL_BUG)
    result = pytester.runpytest(*LOAD, "--tgl-runtime", "--tgl-runtime-ignore=TGL109")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*unknown rule code or prefix 'TGL109'*"])


# --------------------------------------------------------------------------- no leaks

def test_nothing_is_kept_alive_after_a_watched_training_and_eval_loop():
    class Tag:
        pass

    model = nn.Sequential(nn.Linear(4, 16), nn.Dropout(0.1), nn.Linear(16, 2))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    data = [(torch.randn(8, 4), torch.randint(0, 2, (8,))) for _ in range(4)]
    refs = []

    def track(tensor):
        tag = Tag()
        tensor.grad_fn.metadata["test.tag"] = tag  # alive exactly as long as the graph node
        refs.append(weakref.ref(tag))
        refs.append(weakref.ref(tensor))

    with watch() as report:
        monitor = weakref.ref(watch_monitor())
        total = 0
        for x, y in data:  # training; the loss accumulated with its graph (TGL302)
            out = model(x)
            track(out)
            loss = nn.functional.cross_entropy(out, y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss  # noqa: TGL302
        model.eval()
        correct = 0
        for x, y in data:  # evaluation without no_grad (TGL101)
            out = model(x)
            track(out)
            correct += int((out.argmax(1) == y).sum())
        del out, loss, total
    assert {f.code for f in report.findings} == {"TGL101", "TGL302"}
    assert all(isinstance(v, (str, int)) for f in report.findings for v in vars_of(f))
    gc.collect()
    assert [r for r in refs if r() is not None] == []
    assert monitor() is None


def test_a_graph_that_outlives_its_watch_is_not_taken_for_the_next_watchs():
    model = nn.Linear(4, 1)
    kept = []
    with watch() as first:
        kept.append(model(torch.randn(3, 4)))  # noqa: TGL101
    old_line = _line(-1)
    assert first.codes() == [(old_line, "TGL101")]
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    with watch() as second:  # its first forward has the record id of the kept graph's forward
        total = 0
        for _ in range(4):
            opt.zero_grad()
            loss = model(torch.randn(5, 4)).pow(2).mean()
            loss.backward()
            opt.step()
            total += loss  # noqa: TGL302
        line = _line(-1)
    assert second.codes() == [(line, "TGL302")]
    with watch() as third:  # the kept graph as an input of a new forward
        out = nn.Linear(1, 1)(kept[0])  # noqa: TGL101
        line = _line(-1)
    assert third.codes() == [(line, "TGL101")]
    del kept, out, total, loss


def watch_monitor():
    from torchgradlint.runtime import monitor

    return monitor._active_monitor


def vars_of(finding):
    return (finding.code, finding.filename, finding.line, finding.message)


def test_sources_are_dedented():
    for source in (EVAL_BUG, CLEAN, EACH_CODE, UNDECIDABLE):
        assert source == textwrap.dedent(source)
