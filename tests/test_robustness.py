"""Never crash, never damage: hostile and unusual inputs through every entry point.

Each input goes through

* the flake8 plugin, fed exactly as flake8 feeds it (flake8's ``FileProcessor`` reads and
  decodes the file, builds the ``ast`` tree; no tree, no plugin call: flake8 reports E999);
* the engine (``lint_source`` on the decoded text, ``lint_file`` on the file);
* the command line, as a real subprocess, once over a folder holding every input (and once more
  with ``--strict``), and flake8 itself over the same folder.

None may raise, hang or print a traceback. A file Python itself cannot compile (the oracle is
``compile()`` on the file's bytes, which applies PEP 263) gets exactly one ``path: cannot
analyse: why`` line on the CLI's standard error and one TGL001 finding; the exit status is 0 or
1, and 2 only under ``--strict``. Every in-process call runs under a time limit; no test times the
linter otherwise.

Inputs the linter mishandles today are listed in ``KNOWN_BUGS`` with the reason; those tests
are expected to fail (strict xfail: when a fix lands, the test passes and the mark must go).
"""

from __future__ import annotations

import argparse
import ast
import gc
import json
import os
import random
import re
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional

import pytest

from torchgradlint.engine import lint_file, lint_source, may_contain_findings
from torchgradlint.findings import Finding
from torchgradlint.plugin import TorchGradLintPlugin
from torchgradlint.sourcefile import SourceError, decode_source

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from pytorch_programs import generate, importing  # noqa: E402
from cpu_limit import time_limit  # noqa: E402

IN_PROCESS_LIMIT = 15.0  # CPU seconds for one input through one entry point (they take far less)
CLI_LIMIT = 240.0


# --------------------------------------------------------------------------- helpers


def python_compiles(data: bytes) -> bool:
    """The oracle: does CPython itself accept these bytes as a module (PEP 263 decoding)?"""
    try:
        compile(data, "<case>", "exec", ast.PyCF_ONLY_AST, dont_inherit=True)
        return True
    except (SyntaxError, ValueError, RecursionError, MemoryError, UnicodeError):
        return False


def cli_env(tmp: Path) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO)] + [p for p in [env.get("PYTHONPATH")] if p])
    env.pop("PYTHONWARNINGS", None)
    env["TORCHGRADLINT_CACHE_DIR"] = str(tmp / ".tgl-cache")
    return env


def run_cli(*args: str, cwd: Path, stdin: Optional[bytes] = None,
            timeout: float = CLI_LIMIT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "torchgradlint", *args], cwd=str(cwd),
                          input=stdin if stdin is not None else b"", capture_output=True,
                          env=cli_env(cwd), timeout=timeout)


def flake8_lines_and_tree(path: Path):
    """What flake8 hands the plugin: its decoded lines and its ``ast`` tree (None when flake8
    would report E999 instead of running plugins)."""
    from flake8.processor import FileProcessor

    options = argparse.Namespace(hang_closing=False, indent_size=4, max_line_length=79,
                                 max_doc_length=None, verbose=0, stdin_display_name="stdin")
    try:
        processor = FileProcessor(str(path), options)
    except LookupError:  # flake8 itself stops on a cookie naming a non-text codec
        return None, None
    try:
        tree = processor.build_ast()
    except (SyntaxError, ValueError, RecursionError, MemoryError, UnicodeError):
        tree = None
    return processor.lines, tree


def assert_findings_sane(findings: List[Finding], source: str) -> None:
    total_lines = max(1, len(source.splitlines()))
    for finding in findings:
        assert finding.code.startswith("TGL")
        assert 1 <= finding.line <= total_lines + 1, finding
        assert finding.col >= 0, finding


# --------------------------------------------------------------------------- the inputs


@dataclass
class Case:
    name: str
    data: bytes
    why: str = ""  # for KNOWN_BUGS: what goes wrong and where
    heavy: bool = False  # big: linted once per entry point, left out of the flake8 run
    flake8_crashes: bool = False  # flake8 itself fails on it before any plugin runs
    bug_in: tuple = ("engine", "plugin", "cli")  # for KNOWN_BUGS: the entry points it breaks
    limit: float = IN_PROCESS_LIMIT  # CPU seconds per entry point
    # Python compiles it, but it is nested deeper than the analysis goes: no findings, and the
    # CLI names it ("cannot analyse: nested deeper than the analysis goes").
    too_deep: bool = False

    @property
    def filename(self) -> str:
        return re.sub(r"[^A-Za-z0-9_]+", "_", self.name) + ".py"


TGL103 = "import torch\n\nwith torch.no_grad:\n    pass\n"  # a finding on line 3, certainly

EVAL = textwrap.dedent("""\
    import torch
    import torch.nn as nn

    model = nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.1))


    def evaluate(loader):
        model.eval()
        correct = 0
        for x, y in loader:
            out = model(x)
            correct += (out.argmax(1) == y).sum().item()
        return correct
    """)


def nested(prefix: str, suffix: str, depth: int, inner: str) -> str:
    return prefix * depth + inner + suffix * depth


def nested_blocks(header: str, depth: int, body: str) -> str:
    lines = ["import torch", "model = torch.nn.Linear(2, 2)", "def evaluate(loader):"]
    for level in range(depth):
        lines.append("    " * (level + 1) + header.format(i=level))
    lines.append("    " * (depth + 1) + body)
    return "\n".join(lines) + "\n"


def big_file(lines: int) -> str:
    """A long torch module: mostly small functions, a training loop and an evaluation."""
    parts = [EVAL, "\n"]
    count = EVAL.count("\n") + 1
    n = 0
    while count < lines:
        parts.append(f"def helper_{n}(x, scale={n}):\n    y = x * scale + {n}\n    return y\n\n\n")
        count += 5
        n += 1
    return "".join(parts)


def notebook_export() -> str:
    return textwrap.dedent("""\
        #!/usr/bin/env python
        # coding: utf-8

        # # Training a classifier
        #
        # Exported from Jupyter.

        # In[1]:


        import torch
        import torch.nn as nn
        get_ipython().run_line_magic('matplotlib', 'inline')
        get_ipython().system('nvidia-smi')


        # In[2]:


        model = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.Linear(8, 2))
        model.eval()


        # In[3]:


        for x, y in val_loader:
            pred = model(x)
        print(pred)


        # In[ ]:




        """)


def generated_protobuf_like() -> str:
    fields = "".join(f"  _descriptor.FieldDescriptor(name='f{i}', index={i}, number={i + 1}, "
                     f"type=9, cpp_type=9, label=1, has_default_value=False, default_value=b'',"
                     f" message_type=None, enum_type=None, containing_type=None),\n"
                     for i in range(400))
    return ("import torch\nfrom google.protobuf import descriptor as _descriptor\n"
            "_MSG = _descriptor.Descriptor(name='Msg', fields=[\n" + fields + "])\n"
            "DATA = {" + ", ".join(f"'k{i}': [{i}, {i}.5, 'v{i}']" for i in range(20000)) + "}\n")


MATCH = textwrap.dedent("""\
    import torch

    def run(command, model, loader):
        match command:
            case {"action": "eval", "data": data}:
                model.eval()
                for x in data:
                    model(x)
            case ["train", *rest] if rest:
                model.train()
            case Point(x=0, y=yy) | Other(yy):
                model(yy)
            case str() as name:
                print(name)
            case _:
                pass
    """)

EXCEPT_STAR = textwrap.dedent("""\
    import torch

    def evaluate(model, loader):
        model.eval()
        try:
            for x in loader:
                model(x)
        except* ValueError as group:
            model.train()
        except* (TypeError, KeyError):
            pass
    """)

NEWEST_SYNTAX = textwrap.dedent("""\
    import torch

    type Batch = list[torch.Tensor]

    class Wrapper[T: torch.nn.Module]:
        def __init__(self, inner: T) -> None:
            self.inner = inner

    def first[T](items: list[T]) -> T:
        return items[0]
    """)

ODD_BUT_VALID = textwrap.dedent('''\
    """Valid code that stresses name resolution."""
    from __future__ import annotations
    import torch as nn
    import torch.nn as torch
    from torch import *
    from . import sibling
    from .. import parent as T
    import torch

    model = torch.nn.Linear(2, 2) if True else None

    class A(A):
        pass

    class B(B, A, metaclass=type):
        def forward(self, x: "List[int") -> "\\x00":
            return self(x)

    def recurse(model, n):
        return recurse(model, n - 1) if n else model(n)

    def ping(model, x):
        return pong(model, x)

    def pong(model, x):
        return ping(model, x)

    def evaluate(model, *args, **kwargs):
        model.eval(*args)
        model.train(*args, **kwargs)
        torch.set_grad_enabled(**kwargs)
        with torch.no_grad() as g, open(__file__) as handle, torch.no_grad:
            pass
        with (torch.no_grad(), torch.enable_grad()):
            (model)(1)
            model[0](1)
            getattr(model, "eval")()
            model.eval.__call__()
            model.eval()()
            (lambda m: m(1))(model)
        global glob
        del model
        evaluate(*args, **kwargs)
        evaluate(model=None, extra=1)
        evaluate()
        return [y for x in args if (y := model(x))]

    def evaluate(model, loader):  # redefined
        nonlocal_free = 1
        def inner():
            nonlocal nonlocal_free
            nonlocal_free += model(1)
        return inner

    @(lambda f: f)
    @torch.no_grad
    @evaluate
    def decorated(pos, /, key, *, kw=evaluate(1, 2), **rest): ...

    async def stream(model, loader):
        async with torch.no_grad():
            async for x in loader:
                await model(x)
        return [model(x) async for x in loader]

    def gen(model, loader):
        for x in loader:
            yield model(x)
            yield from loader

    class Frozen:
        x: int = 1
        model = torch.nn.Linear(1, 1)
        model.eval()
        for p in model.parameters():
            p.requires_grad = False
        def method():  # no self
            return Frozen.model(1)
        def __call__(self, *a):
            self.model.eval
            return self.model(*a)

    torch = None
    torch.no_grad
    torch.nn.Module.eval
    print(f"{model(1)!r:>{10}} {'nested' f'{1}'}")
    x = [*range(3)]; y = {**{}}; z = a[1:2, ..., None]
    ''')

UNICODE = textwrap.dedent("""\
    import torch
    모델 = torch.nn.Linear(2, 2)
    modèle = 모델
    def évaluer(données_val):
        modèle.eval()
        for 𝑥 in données_val:
            sortie = modèle(𝑥)  # ünïcödé 🚀 \\ud800
        return "ß" * 3 + "\\N{SNOWMAN}"
    """)


def _bytes(text: str, encoding: str = "utf-8") -> bytes:
    return text.encode(encoding)


CASES: List[Case] = [
    # empty and near-empty
    Case("empty file", b""),
    Case("only newlines and whitespace", b"\n\n   \n\t\n"),
    Case("only comments", b"# torch\n# no_grad\n"),
    Case("import without newline at end", b"import torch"),
    Case("finding without newline at end", _bytes(TGL103.rstrip("\n"))),
    Case("flake8 noqa file", _bytes("# flake8: noqa\n" + TGL103)),
    # encodings
    Case("utf-8 BOM", b"\xef\xbb\xbf" + _bytes(TGL103)),
    Case("utf-8 BOM and utf-8 cookie", b"\xef\xbb\xbf# -*- coding: utf-8 -*-\n" + _bytes(TGL103)),
    Case("latin-1 cookie", _bytes("# -*- coding: latin-1 -*-\n" + TGL103 + "s = 'caf\xe9'\n",
                                  "latin-1")),
    Case("cookie on line two", _bytes("#!/usr/bin/env python\n# vim: set fileencoding=cp1252 :\n"
                                      + TGL103 + "s = '\u20ac'\n", "cp1252")),
    Case("cookie on line three is ignored", b"#!/usr/bin/env python\n\n# coding: latin-1\n"
         + _bytes(TGL103) + b"s = '\xe9'\n"),
    Case("not utf-8 without cookie", _bytes(TGL103) + b"s = 'caf\xe9'\n"),
    Case("unknown codec cookie", b"# coding: klingon\n" + _bytes(TGL103)),
    Case("non-text codec cookie", b"# coding: rot13\n" + _bytes(TGL103),
         flake8_crashes=True),
    Case("utf-16 cookie", b"# coding: utf-16\n" + _bytes(TGL103)),
    Case("BOM contradicts cookie", b"\xef\xbb\xbf# coding: latin-1\n" + _bytes(TGL103)),
    Case("utf-16 file with BOM", _bytes(TGL103, "utf-16")),
    Case("NUL byte", _bytes(TGL103) + b"x = 1\x00\n"),
    Case("NUL bytes everywhere", b"import torch\x00\x00\n\x00"),
    Case("lone surrogate bytes", _bytes(TGL103) + b"s = '\xed\xa0\x80'\n"),
    Case("unicode identifiers and emoji", _bytes(UNICODE)),
    # line endings and whitespace
    Case("CRLF", _bytes(TGL103.replace("\n", "\r\n"))),
    Case("CR only (classic Mac)", _bytes(EVAL.replace("\n", "\r"))),
    Case("mixed line endings", _bytes("".join(
        line + ending for line, ending in zip(EVAL.splitlines(), ["\n", "\r\n", "\r"] * 20)))),
    Case("tabs", _bytes(EVAL.replace("    ", "\t"))),
    Case("tabs and spaces inconsistent", b"import torch\nif True:\n\tx = 1\n        y = 2\n"),
    Case("form feeds", b"import torch\n\x0c\ndef f():\n\x0c    return torch.no_grad\n"),
    Case("trailing backslash at end of file", b"import torch\nx = 1 + \\"),
    Case("very long line", b"import torch\nx = '" + b"a" * 1_000_000 + b"'\n"),
    # syntax errors and Python 2
    Case("syntax error", _bytes("import torch\n\ndef f(:\n    pass\n")),
    Case("unclosed parenthesis", _bytes("import torch\nmodel(x\n")),
    Case("unterminated triple quote", _bytes('import torch\ns = """never closed\n')),
    Case("unexpected indent", _bytes("import torch\n    x = 1\n")),
    Case("invalid character", _bytes("import torch\nx = 1 $ 2\n")),
    Case("python 2 print", _bytes("import torch\nprint 'loss', loss\n")),
    Case("python 2 except and exec", _bytes(
        "import torch\ntry:\n    pass\nexcept ValueError, e:\n    exec 'x = 1'\n")),
    Case("python 2 literals", _bytes("import torch\nx = 0777 + 10L\ny = ur'raw'\nz = `x`\n"
                                     "if x <> y: pass\n")),
    # deep nesting: past the parser's limits (cannot analyse) and just inside them
    Case("parentheses 100k deep", _bytes("import torch\nx = " + nested("(", ")", 100_000, "1")
                                         + "\n")),
    Case("a+a+... 50k terms", _bytes("import torch\nx = " + "+".join(["a"] * 50_000) + "\n"),
         flake8_crashes=True),
    Case("model(x)+... 50k terms", _bytes("import torch\nx = "
                                          + "+".join(["model(x)"] * 50_000) + "\n"),
         flake8_crashes=True),
    Case("f(f(f(...))) 1000 deep", _bytes("import torch\nx = " + nested("f(", ")", 1000, "x")
                                          + "\n")),
    Case("f(f(f(...))) 150 deep", _bytes("import torch\nx = " + nested("model(", ")", 150, "x")
                                         + "\n")),
    Case("lists 150 deep", _bytes("import torch\nx = " + nested("[", "]", 150, "model(x)") + "\n")),
    Case("unary minus 20k", _bytes("import torch\nx = " + "-" * 20_000 + "model(x)\n"),
         flake8_crashes=True),
    Case("not 5k", _bytes("import torch\nx = " + "not " * 5_000 + "model(x)\n"),
         flake8_crashes=True),
    Case("method chain 500", _bytes("import torch\nx = model(x)" + ".float()" * 500 + "\n"),
         flake8_crashes=True),
    Case("subscripts 500", _bytes("import torch\nx = model(x)" + "[0]" * 500 + "\n"),
         flake8_crashes=True),
    Case("lambdas 500", _bytes("import torch\nf = " + "lambda: " * 500 + "model(x)\n")),
    Case("boolean chain 5k", _bytes("import torch\nok = " + " and ".join(["model(x)"] * 5000)
                                    + "\n")),
    Case("comparison chain 2k", _bytes("import torch\nok = " + " < ".join(["model(x)"] * 2000)
                                       + "\n")),
    Case("ifs 99 deep", _bytes(nested_blocks("if c{i}:", 98, "y = model(x)"))),
    Case("ifs 150 deep", _bytes(nested_blocks("if c{i}:", 150, "y = model(x)"))),
    Case("with no_grad 90 deep", _bytes(nested_blocks("with torch.no_grad():", 90, "y = model(x)"))),
    Case("try/finally 60 deep", _bytes("import torch\ndef f(model, x):\n" + "".join(
        "    " * (i + 1) + "try:\n" for i in range(60)) + "    " * 61 + "model(x)\n" + "".join(
        "    " * (i + 1) + "finally:\n" + "    " * (i + 2) + "model.eval()\n"
        for i in reversed(range(60))))),
    Case("defs 98 deep", _bytes("import torch\n" + "".join(
        "    " * i + f"def f{i}(model):\n" for i in range(98)) + "    " * 98 + "return model(1)\n")),
    Case("classes 98 deep", _bytes("import torch\n" + "".join(
        "    " * i + f"class C{i}(torch.nn.Module):\n" for i in range(98))
        + "    " * 98 + "def forward(self, x): return self.m(x)\n")),
    Case("for loops 6 deep", _bytes(nested_blocks("for x{i} in loader:", 6, "y = model(x0)"))),
    # size
    Case("50,000 lines", _bytes(big_file(50_000)), heavy=True),
    Case("50,000 lines without torch", b"".join(b"x%d = %d\n" % (i, i) for i in range(50_000)),
         heavy=True),
    Case("generated code (protobuf-like, huge dict)", _bytes(generated_protobuf_like()), heavy=True),
    Case("many statements on one line", _bytes("import torch\n" + "; ".join(
        f"y{i} = model(x)" for i in range(5000)) + "\n"), heavy=True),
    # newest syntax and odd shapes
    Case("match statement", _bytes(MATCH)),
    Case("except star", _bytes(EXCEPT_STAR)),
    Case("PEP 695 (3.12+; a syntax error before)", _bytes(NEWEST_SYNTAX)),
    Case("odd but valid code", _bytes(ODD_BUT_VALID)),
    Case("notebook exported to .py", _bytes(notebook_export())),
    Case("notebook with raw magics", _bytes("import torch\n%matplotlib inline\n!pip install x\n"
                                            "model.eval()\n")),
    Case("jupytext percent cells", _bytes("# %%\nimport torch\n\n# %% [markdown]\n# text\n\n# %%\n"
                                          + EVAL)),
    Case("generated program", _bytes(generate(random.Random(7)).source())),
]

# Inputs the linter mishandles today (reported to the lead with these reproducers).
KNOWN_BUGS: List[Case] = [
    Case("codec failing with UnicodeError", b"# coding: undefined\n" + _bytes(TGL103),
         "sourcefile.decode_source catches UnicodeDecodeError, not UnicodeError: the CLI dies "
         "with a traceback (all files' output lost), lint_file raises", bug_in=("engine", "cli")),
    Case("punycode codec", b"# coding: punycode\n" + _bytes(TGL103),
         "same as above: punycode raises a bare UnicodeError", bug_in=("engine", "cli")),
    Case(".data chain 1200 deep", _bytes(EVAL + "\ndef g(a):\n    x = a" + ".data" * 1200
                                         + "\n    return model(x)\n"),
         "dataflow.Dataflow.sources recurses once per `.data`/`.detach` attribute: "
         "RecursionError, reported as an internal error (CLI exit 2); later too deep to "
         "analyse; now analysed on a deep stack, like a 2,500-branch elif chain"),
    Case("class inheritance chain 1500", _bytes(
        "import torch\nimport torch.nn as nn\nclass C0(nn.Module):\n    pass\n" + "".join(
            f"class C{i}(C{i - 1}):\n    pass\n" for i in range(1, 1500))
        + "m = C1499()\nm.eval()\nfor x in val_loader:\n    m(x)\n    m.helper()\n"),
        "facts._class_has_dropout_or_batchnorm (and ClassInfo.find_method) recurse once per "
        "base class: RecursionError, reported as an internal error (CLI exit 2); later too deep "
        "to analyse; now walked without recursion"),
    Case("string annotation too deep for the parser", _bytes(
        "import torch\ndef f(model: '" + "x" + ".a" * 3000 + "'):\n    return model(1)\n"),
        "structure.StructureBuilder._new_function parses string annotations catching only "
        "SyntaxError: RecursionError -> internal error"),
    Case("string annotation exhausting the parser", _bytes(
        "import torch\ndef f(model: '" + "-" * 100_000 + "x'):\n    return model(1)\n"),
        "same place: MemoryError -> internal error"),
    Case("accumulating a 700-term sum", _bytes(
        "import torch\nimport torch.nn.functional as F\nmodel = torch.nn.Linear(2, 2)\n"
        "def train(loader, opt):\n    total = 0\n    for x, y in loader:\n"
        "        loss = F.cross_entropy(model(x), y)\n        loss.backward()\n        opt.step()\n"
        "        total += " + " + ".join(["loss"] * 700) + "\n"),
        "rules/tgl302: `ast.unparse(value)` (for the message) recurses: RecursionError in rule "
        "TGL302, an internal error (and at 300 terms the message is 4,000 characters long)"),
    Case("backward of a 700-term sum", _bytes(
        "import torch\nmodel = torch.nn.Linear(2, 2)\ndef train(x, opt):\n"
        "    with torch.no_grad():\n        out = model(x)\n    ("
        + " + ".join(["out"] * 700) + ").backward()\n    opt.step()\n"),
        "rules/tgl102: `ast.unparse(loss)` recurses: RecursionError in rule TGL102, an "
        "internal error"),
    Case("for loops 24 deep", _bytes(nested_blocks("for x{i} in loader:", 24, "y = model(x0)")),
         "flow.FlowAnalysis._node analyses a loop body twice, so nested loops cost 2**depth: "
         "hangs (16 deep: ~3 s, 18 deep: ~12 s, 24 deep: ~13 min)", limit=2.0),
]


# All fixed since they were found: they stay here, run without an xfail mark, so they stay fixed.
for _case in KNOWN_BUGS:
    _case.bug_in = ()


def _case_params(entry_point: str):
    params = [pytest.param(case, id=case.name) for case in CASES]
    for case in KNOWN_BUGS:
        marks = [pytest.mark.xfail(strict=True, reason=f"known bug: {case.why}")] \
            if entry_point in case.bug_in else []
        params.append(pytest.param(case, id=case.name, marks=marks))
    return params


# --------------------------------------------------------------------------- plugin, engine


@pytest.mark.parametrize("case", _case_params("engine"))
def test_engine(case: Case, tmp_path: Path) -> None:
    """``lint_file`` and ``lint_source`` return findings or nothing: no exception, no internal
    error, no hang; undecodable or uncompilable files have no findings."""
    path = tmp_path / case.filename
    path.write_bytes(case.data)
    errors: list = []

    def on_error(filename, where, error):
        errors.append(f"{where}: {type(error).__name__}: {error}")

    with time_limit(case.limit):
        from_file = lint_file(str(path), on_error=on_error)
        try:
            text = decode_source(case.data, str(path))
        except SourceError:
            text = None
        if case.heavy:  # lint_file is decode_source + lint_source already
            from_text = from_file
        else:
            from_text = lint_source(text, str(path), on_error=on_error) if text is not None else []
    assert not errors, errors
    assert isinstance(from_file, list) and isinstance(from_text, list)
    if not python_compiles(case.data):
        assert from_file == [] and from_text == []
    else:
        assert_findings_sane(from_file, text or "")
        assert from_file == from_text


@pytest.mark.parametrize("case", _case_params("plugin"))
def test_flake8_plugin(case: Case, tmp_path: Path, capsys) -> None:
    """The plugin on flake8's own lines and tree yields well-formed results, never raises,
    reports no internal error."""
    path = tmp_path / case.filename
    path.write_bytes(case.data)
    lines, tree = flake8_lines_and_tree(path)
    if tree is None:
        assert not python_compiles(case.data)
        return  # flake8 reports E999 (or fails itself) and runs no plugin
    with time_limit(case.limit):
        results = list(TorchGradLintPlugin(tree, lines, str(path)).run())
    for line, col, text, kind in results:
        assert isinstance(line, int) and line >= 1
        assert isinstance(col, int) and col >= 0
        assert text.startswith("TGL") and kind is TorchGradLintPlugin
    assert "internal error" not in capsys.readouterr().err


def test_plugin_on_trees_flake8_never_sends() -> None:
    """flake8 only ever passes a Module, but a plugin should not fall over on anything else."""
    for tree in (None, ast.Expression(body=ast.Constant(1)), ast.parse("x = 1").body[0]):
        assert list(TorchGradLintPlugin(tree, ["x = 1\n"], "x.py").run()) == []
    assert list(TorchGradLintPlugin(ast.parse(TGL103), [], "x.py").run()) == []  # no lines


def test_line_endings_do_not_move_findings() -> None:
    """CRLF, CR and BOM give the same findings at the same lines as LF."""
    expected = [(f.line, f.col, f.code) for f in lint_source(EVAL)]
    assert expected, "the reference program must have a finding"
    for variant in (EVAL.replace("\n", "\r\n"), EVAL.replace("\n", "\r")):
        assert [(f.line, f.col, f.code) for f in lint_source(variant)] == expected
    bom = decode_source(b"\xef\xbb\xbf" + EVAL.encode())
    assert [(f.line, f.col, f.code) for f in lint_source(bom)] == expected


# --------------------------------------------------------------------------- command line

LINE = re.compile(r"^(?P<path>.+?): (?P<kind>cannot analyse|internal error): (?P<why>.+)$")


@pytest.fixture(scope="module")
def case_folder(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("robustness-cases")
    for case in CASES:
        (folder / case.filename).write_bytes(case.data)
    return folder


def _heavy_files() -> List[str]:
    return [case.filename for case in CASES if case.heavy]


def _flake8_crashes() -> List[str]:
    """Inputs flake8 itself fails on, whatever the plugins: RecursionError / MemoryError in its
    own ``ast.parse``, LookupError on a ``rot13`` cookie, RecursionError in pyflakes (which
    aborts the run). The plugin still sees them in ``test_flake8_plugin`` when a tree exists."""
    return [case.filename for case in CASES if case.flake8_crashes]


def cli_reports(data: bytes) -> bool:
    """Whether the CLI owes a ``cannot analyse`` line: the bytes do not decode, or Python cannot
    compile them and they pass the documented text screen (files mentioning none of the words
    the rules look for are skipped before parsing)."""
    try:
        text = decode_source(data)
    except SourceError:
        return True
    return may_contain_findings(text) and not python_compiles(data)


def _expected_unanalysable() -> set:
    return {case.filename for case in CASES if cli_reports(case.data) or case.too_deep}


def test_cli_on_every_input(case_folder: Path) -> None:
    """One run over all the inputs: exit 0 or 1, valid JSON, and on stderr exactly one
    ``path: cannot analyse: why`` line per file Python cannot compile, nothing else. The linted
    files are left exactly as they were (the linter reads; it never writes to them)."""
    before = {path.name: path.read_bytes() for path in case_folder.glob("*.py")}
    result = run_cli("check", "--format", "json", "--isolated", ".", cwd=case_folder)
    assert {path.name: path.read_bytes() for path in case_folder.glob("*.py")} == before
    stderr = result.stderr.decode("utf-8", "replace")
    assert "Traceback" not in stderr, stderr
    assert result.returncode in (0, 1), (result.returncode, stderr)
    json.loads(result.stdout.decode("utf-8"))
    reported = []
    for line in stderr.splitlines():
        match = LINE.match(line)
        assert match, f"unexpected stderr line: {line!r}"
        assert match.group("kind") == "cannot analyse", line
        reported.append(os.path.basename(match.group("path")))
    assert sorted(reported) == sorted(set(reported)), "one line per file"
    assert set(reported) == _expected_unanalysable()


def test_cli_strict_exits_2_on_unanalysable_files(tmp_path: Path) -> None:
    """``--strict``: the same stderr lines, the findings still printed, exit status 2; without
    an unanalysable file, the usual 1."""
    (tmp_path / "broken.py").write_bytes(b"import torch\n\ndef f(:\n    pass\n")
    (tmp_path / "latin.py").write_bytes(TGL103.encode() + b"s = 'caf\xe9'\n")
    (tmp_path / "good.py").write_bytes(TGL103.encode())
    result = run_cli("check", "--strict", "--isolated", "-j", "1", ".", cwd=tmp_path)
    stderr = result.stderr.decode("utf-8", "replace")
    assert "Traceback" not in stderr, stderr
    assert result.returncode == 2
    assert b"good.py:3:" in result.stdout
    assert sorted(os.path.basename(LINE.match(line).group("path")) for line in stderr.splitlines()
                  if LINE.match(line)) == ["broken.py", "latin.py"], stderr
    clean = run_cli("check", "--strict", "--isolated", "good.py", cwd=tmp_path)
    assert clean.returncode == 1 and clean.stderr == b""


def test_flake8_on_every_input(case_folder: Path) -> None:
    """flake8 with the plugin over all the inputs: no plugin exception, no traceback."""
    env = cli_env(case_folder)
    result = subprocess.run(
        [sys.executable, "-m", "flake8", "--isolated", "--select", "TGL,E902,E999",
         "--extend-exclude", ",".join(_heavy_files() + _flake8_crashes()), "."],
        cwd=str(case_folder), capture_output=True, env=env, timeout=CLI_LIMIT)
    stderr = result.stderr.decode("utf-8", "replace")
    assert "Traceback" not in stderr and "PluginExecutionFailed" not in stderr, stderr[-3000:]
    assert result.returncode in (0, 1), stderr[-3000:]
    codes = {line.split(": ", 1)[1].split()[0] for line in
             result.stdout.decode("utf-8", "replace").splitlines() if ": " in line}
    assert codes <= {"TGL001", "TGL101", "TGL102", "TGL103", "TGL201", "TGL202", "TGL203",
                     "TGL301", "TGL302", "TGL303", "E902", "E999"}, codes


@pytest.mark.parametrize("data, kind", [
    (b"\xef\xbb\xbf" + TGL103.encode(), "finding"),
    (TGL103.encode() + b"s = '\xe9'\n", "cannot analyse"),
    (b"import torch\nx = 1\x00\n", "cannot analyse"),
    (b"", "clean"),
    (b"# coding: undefined\n" + TGL103.encode(), "cannot analyse"),
], ids=["bom", "latin-1 bytes", "nul", "empty", "codec raising UnicodeError"])
def test_cli_stdin(data: bytes, kind: str, tmp_path: Path) -> None:
    result = run_cli("check", "--isolated", "-", "--stdin-filename", "stdin_case.py",
                     cwd=tmp_path, stdin=data, timeout=60)
    stderr = result.stderr.decode("utf-8", "replace")
    assert "Traceback" not in stderr, stderr
    if kind == "finding":
        assert result.returncode == 1 and b"TGL103" in result.stdout and stderr == ""
    elif kind == "clean":
        assert result.returncode == 0 and stderr == ""
    else:  # a file that cannot be analysed: one TGL001 finding, and why on stderr
        assert result.returncode == 1, stderr
        assert result.stdout.decode().startswith("stdin_case.py:") and \
            [line.split()[1] for line in result.stdout.decode().splitlines()] == ["TGL001"]
        lines = stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith("stdin_case.py: cannot analyse: "), lines


@pytest.mark.parametrize("case", [pytest.param(case, id=case.name, marks=[pytest.mark.xfail(
    strict=True, reason=f"known bug: {case.why}")] if "cli" in case.bug_in else [])
    for case in KNOWN_BUGS])
def test_cli_known_bugs(case: Case, tmp_path: Path) -> None:
    """Each known-bad input alone, next to a good file whose finding must survive."""
    (tmp_path / case.filename).write_bytes(case.data)
    (tmp_path / "good.py").write_bytes(TGL103.encode())
    limit = 20.0 if case.limit >= IN_PROCESS_LIMIT else 6.0  # wall clock: start-up included
    try:
        result = run_cli("check", "--isolated", "-j", "1", ".", cwd=tmp_path, timeout=limit)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the CLI did not finish in {limit} s")
    stderr = result.stderr.decode("utf-8", "replace")
    assert "Traceback" not in stderr, stderr[-2000:]
    assert b"good.py:3:" in result.stdout
    assert result.returncode == 1, stderr  # a finding; the odd file is no internal error
    assert len(stderr.splitlines()) == (1 if cli_reports(case.data) or case.too_deep else 0), stderr
    if case.too_deep:
        assert stderr.strip() == f"{case.filename}: cannot analyse: nested deeper than the " \
                                 "analysis goes (Python's recursion limit)"


# --------------------------------------------------------------------------- internal errors

DRIVER = textwrap.dedent("""\
    import sys
    import torchgradlint.rules as rules
    from torchgradlint import cli

    real = rules.checkers

    def broken(kind):
        def check(model):
            if kind == "recursion":
                raise RecursionError("maximum recursion depth exceeded")
            raise RuntimeError("boom")
            yield
        return check

    def checkers():
        found = []
        for info, check in real():
            if info.code in sys.argv[1].split(","):
                found.append((info, broken("recursion" if info.code == "TGL201" else "runtime")))
            else:
                found.append((info, check))
        return found

    rules.checkers = checkers
    sys.exit(cli.main(sys.argv[2:]))
    """)


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_internal_error_in_rules_is_reported_once_per_file(jobs: str, tmp_path: Path) -> None:
    """Two rules raising on every file: the other rules still report, every file is still
    linted, each file gets one ``internal error`` line naming it, no traceback, exit 2."""
    (tmp_path / "driver.py").write_text(DRIVER)
    project = tmp_path / "project"
    project.mkdir()
    (project / "a.py").write_bytes(TGL103.encode())
    (project / "b.py").write_bytes(TGL103.encode())
    (project / "c.py").write_bytes(b"x = 1\n")  # skipped by the screen: no error either
    result = subprocess.run(
        [sys.executable, str(tmp_path / "driver.py"), "TGL101,TGL201", "check", "--isolated",
         "-j", jobs, "project"], cwd=str(tmp_path), capture_output=True,
        env=cli_env(tmp_path), timeout=CLI_LIMIT)
    stdout = result.stdout.decode()
    stderr = result.stderr.decode()
    assert result.returncode == 2, stderr
    assert "Traceback" not in stderr
    assert "a.py:3:" in stdout and "b.py:3:" in stdout  # TGL103 still runs
    lines = stderr.splitlines()
    assert len(lines) == 2, lines
    for line, name in zip(sorted(lines), ("a.py", "b.py")):
        match = LINE.match(line)
        assert match and match.group("kind") == "internal error", line
        assert match.group("path").endswith(name)
        assert "TGL101" in line and "TGL201" in line and "RuntimeError" in line


def test_internal_error_in_engine_never_escapes(monkeypatch) -> None:
    """A rule or the semantic model raising: lint_source returns the other rules' findings,
    calls on_error once per failure, raises nothing; the plugin yields what it can."""
    import torchgradlint.rules as rules
    import torchgradlint.semantic as semantic

    real = rules.checkers

    def failing(model):
        raise ValueError("rule failure")
        yield

    monkeypatch.setattr(rules, "checkers", lambda: [
        (info, failing if info.code == "TGL101" else check) for info, check in real()])
    errors = []
    findings = lint_source(TGL103 + EVAL.split("\n", 2)[2], "x.py",
                           on_error=lambda f, where, e: errors.append(where))
    assert [f.code for f in findings] == ["TGL103"]
    assert errors == ["rule TGL101"]
    plugin_results = list(TorchGradLintPlugin(ast.parse(TGL103), TGL103.splitlines(True),
                                              "x.py").run())
    assert [r[2][:6] for r in plugin_results] == ["TGL103"]

    class Exploding:
        def __init__(self, *args, **kwargs):
            raise KeyError("model failure")

    monkeypatch.setattr(semantic, "SemanticModel", Exploding)
    errors.clear()
    assert lint_source(TGL103, "x.py", on_error=lambda f, where, e: errors.append(where)) == []
    assert len(errors) == 1 and "semantic model" in errors[0]
    assert list(TorchGradLintPlugin(ast.parse(TGL103), TGL103.splitlines(True), "x.py").run()) == []


def test_unreadable_project_cache_is_ignored(tmp_path: Path) -> None:
    """A corrupt on-disk summary cache (truncated, wrong shape) costs nothing but time."""
    project = tmp_path / "proj"
    project.mkdir()
    (project / "helpers.py").write_text("import torch\n\ndef run(model, x):\n    return model(x)\n")
    (project / "main.py").write_text(
        "import torch\nfrom helpers import run\n\n" + EVAL + "\nwith torch.no_grad:\n    pass\n")
    cache = tmp_path / "cache"
    env = cli_env(tmp_path)
    env["TORCHGRADLINT_CACHE_DIR"] = str(cache)

    def lint() -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "torchgradlint", "check", "--isolated",
                               "-j", "1", "."], cwd=str(project), capture_output=True, env=env,
                              timeout=CLI_LIMIT)

    first = lint()
    assert first.returncode == 1 and first.stderr == b"", first.stderr
    entries = [p for p in cache.rglob("*.json")]
    for garbage in (b"", b"{not json", b"\xff\xfe", b"[]", b'{"summary": 5}', b'{"summary": "x"}',
                    b'{"summary": []}', b'{"summary": {"functions": []}}',
                    b'{"summary": {"functions": {"run": 5}}}',
                    b'{"summary": {"calls": [{"target": 5}]}}',
                    b'{"depends_on": [], "summary": null}'):
        for entry in entries:
            entry.write_bytes(garbage)
        again = lint()
        assert again.stderr == b"", (garbage, again.stderr.decode()[-2000:])
        assert again.stdout == first.stdout, garbage


# --------------------------------------------------------------------------- memory


def _rss_bytes() -> Optional[int]:
    try:
        with open("/proc/self/statm") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, AttributeError):
        return None


def _project_files(folder: Path, count: int, projects: int, seed: int) -> List[Path]:
    """Generated modules spread over project folders, many importing an earlier module of
    their project (so the project index resolves and summarises across files)."""
    rng = random.Random(seed)
    paths = []
    for index in range(count):
        project = folder / f"project_{index % projects}"
        project.mkdir(parents=True, exist_ok=True)
        source = generate(rng).source()
        if index >= projects and rng.random() < 0.6:
            earlier = rng.randrange(index % projects, index, projects)
            source = importing(source, f"module_{earlier}", rng, str(index))
        path = project / f"module_{index}.py"
        path.write_text(source)
        paths.append(path)
    return paths


def test_memory_stays_flat_over_many_files(tmp_path: Path) -> None:
    """In one process (through ``lint_file``, so with the project index):

    * linting the same 100 files again and again keeps nothing more: after the first pass, the
      number of objects the garbage collector tracks and the resident memory stay put;
    * 200 further, different files stay within a generous memory bound (summaries of the
      project's modules are cached, a few KiB per file; a leak of trees or models would be MiBs).
    """
    if _rss_bytes() is None:
        pytest.skip("needs /proc")
    same = _project_files(tmp_path / "same", 100, 10, seed=1)
    for path in same:
        lint_file(str(path))
    gc.collect()
    objects, rss = len(gc.get_objects()), _rss_bytes()
    for _ in range(2):
        for path in same:
            lint_file(str(path))
    gc.collect()
    assert len(gc.get_objects()) - objects < 2_000, "objects kept across repeated lints"
    assert _rss_bytes() - rss < 8 * 2 ** 20
    rss = _rss_bytes()
    for path in _project_files(tmp_path / "more", 200, 20, seed=2):
        lint_file(str(path))
    gc.collect()
    grown = _rss_bytes() - rss
    assert grown < 40 * 2 ** 20, f"RSS grew by {grown / 2**20:.1f} MiB over 200 files"
