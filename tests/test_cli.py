"""The standalone CLI, run as a real subprocess (``python -m torchgradlint``) on temporary trees.

Tests that need findings use the real engine (no mocks) on a snippet whose finding is certain:
TGL103, ``with torch.no_grad:`` without a call, reported on the ``with`` line; and on the fixtures,
whose ``# expect:`` marks the CLI must report exactly.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import List, Optional

import pytest

from torchgradlint import __version__
from fixture_marks import FixtureMarks
from torchgradlint.rules import RULES

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "fixtures"

BAD = "import torch\n\nwith torch.no_grad:\n    pass\n"  # TGL103 on line 3
BAD_LINE = 3
CLEAN = "import torch\n\nwith torch.no_grad():\n    pass\n"
BROKEN = "import torch\n\ndef f(:\n    pass\n"  # syntax error on line 3


def run(*args: str, cwd: Path, stdin: Optional[bytes] = None) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO)] + [p for p in [env.get("PYTHONPATH")] if p])
    env.pop("PYTHONWARNINGS", None)
    return subprocess.run(
        [sys.executable, "-m", "torchgradlint", *args],
        cwd=str(cwd),
        input=stdin if stdin is not None else b"",
        capture_output=True,
        env=env,
        timeout=300,
    )


def out(result: subprocess.CompletedProcess) -> str:
    return result.stdout.decode("utf-8")


def err(result: subprocess.CompletedProcess) -> str:
    return result.stderr.decode("utf-8")


def write(root: Path, relative: str, text, encoding: str = "utf-8") -> Path:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding=encoding)
    return path


def codes_by_line(result: subprocess.CompletedProcess) -> List[tuple]:
    """(path, line, code) of every text-format finding."""
    found = []
    for line in out(result).splitlines():
        path, number, _col, rest = line.split(":", 3)
        found.append((path, int(number), rest.split()[0]))
    return found


# --------------------------------------------------------------------------- basics


def test_version_and_module_entry(tmp_path):
    result = run("--version", cwd=tmp_path)
    assert result.returncode == 0
    assert out(result).strip() == f"torchgradlint {__version__}"


def test_no_command_is_a_usage_error(tmp_path):
    result = run(cwd=tmp_path)
    assert result.returncode == 2
    assert "usage:" in err(result)


def test_unknown_option_is_a_usage_error(tmp_path):
    result = run("check", "--no-such-option", ".", cwd=tmp_path)
    assert result.returncode == 2


def test_missing_path_exits_2(tmp_path):
    result = run("check", "nowhere.py", cwd=tmp_path)
    assert result.returncode == 2
    assert "nowhere.py: cannot analyse: no such file or directory" in err(result)


def test_unknown_code_in_select_exits_2(tmp_path):
    write(tmp_path, "a.py", CLEAN)
    result = run("check", "--select", "TGL9", "a.py", cwd=tmp_path)
    assert result.returncode == 2
    assert "unknown rule code or prefix 'TGL9'" in err(result)


def test_empty_directory_is_clean_with_a_warning(tmp_path):
    (tmp_path / "empty").mkdir()
    result = run("check", "empty", cwd=tmp_path)
    assert result.returncode == 0
    assert "no Python files found" in err(result)


def test_clean_file_exits_0(tmp_path):
    write(tmp_path, "a.py", CLEAN)
    result = run("check", "a.py", cwd=tmp_path)
    assert (result.returncode, out(result), err(result)) == (0, "", "")


def test_finding_exits_1_in_flake8_text_format(tmp_path):
    write(tmp_path, "pkg/a.py", BAD)
    result = run("check", "pkg", cwd=tmp_path)
    assert result.returncode == 1, err(result)
    lines = out(result).splitlines()
    assert len(lines) == 1
    path, line, col, rest = lines[0].split(":", 3)
    assert (path, int(line)) == ("pkg/a.py", BAD_LINE)
    assert int(col) >= 1  # 1-based, as flake8 prints
    assert rest.startswith(" TGL103 ")


def test_default_path_is_current_directory(tmp_path):
    write(tmp_path, "a.py", BAD)
    result = run("check", cwd=tmp_path)
    assert result.returncode == 1
    assert codes_by_line(result) == [("a.py", BAD_LINE, "TGL103")]


def test_exit_zero(tmp_path):
    write(tmp_path, "a.py", BAD)
    result = run("check", "--exit-zero", "a.py", cwd=tmp_path)
    assert result.returncode == 0
    assert "TGL103" in out(result)


def test_stdin(tmp_path):
    result = run("check", "-", "--stdin-filename", "snippet.py", cwd=tmp_path,
                 stdin=BAD.encode())
    assert result.returncode == 1
    assert codes_by_line(result) == [("snippet.py", BAD_LINE, "TGL103")]


def test_output_file(tmp_path):
    write(tmp_path, "a.py", BAD)
    result = run("check", "--format", "json", "-o", "report.json", "a.py", cwd=tmp_path)
    assert result.returncode == 1
    assert out(result) == ""
    assert json.loads((tmp_path / "report.json").read_text())[0]["code"] == "TGL103"


# --------------------------------------------------------------------------- noqa


@pytest.mark.parametrize(
    "comment, silenced",
    [
        ("# noqa", True),
        ("# NOQA", True),
        ("# NoQa", True),
        ("# noqa: TGL103", True),
        ("# noqa:TGL103", True),
        ("# noqa:TGL101,TGL103", True),
        ("# noqa: TGL101, TGL103", True),
        ("# noqa: TGL101 TGL103", True),
        ("# noqa: TGL1", True),  # prefix
        ("# noqa: TGL", True),  # no digits: not a code list, so a blanket noqa (as flake8)
        ("# noqa:", True),
        ("# noqa : TGL101", True),  # the colon must follow noqa: blanket (as flake8)
        ("# noqa: TGL101", False),  # another code does not silence
        ("# noqa: TGL2", False),
        ("# noqa: E501", False),
        ("# noqa: tgl103", False),  # listed codes are case-sensitive in flake8
        ("#noqa", False),  # flake8 wants "# noqa"
        ("# noqa:  TGL101", True),  # two spaces: the code list is not read, blanket
    ],
)
def test_noqa_variants(tmp_path, comment, silenced):
    source = BAD.replace("with torch.no_grad:", f"with torch.no_grad:  {comment}")
    write(tmp_path, "a.py", source)
    result = run("check", "a.py", cwd=tmp_path)
    assert result.returncode == (0 if silenced else 1), out(result) + err(result)


def test_noqa_on_another_line_does_not_silence(tmp_path):
    write(tmp_path, "a.py", "import torch  # noqa\n\nwith torch.no_grad:\n    pass  # noqa\n")
    result = run("check", "a.py", cwd=tmp_path)
    assert codes_by_line(result) == [("a.py", BAD_LINE, "TGL103")]


def test_flake8_noqa_file_comment_skips_the_file(tmp_path):
    write(tmp_path, "a.py", "# flake8: noqa\n" + BAD)
    assert run("check", "a.py", cwd=tmp_path).returncode == 0


# --------------------------------------------------------------------------- selection


@pytest.mark.parametrize(
    "options, reported",
    [
        ([], True),
        (["--select", "TGL1"], True),
        (["--select", "TGL103"], True),
        (["--select", "TGL2,TGL3"], False),
        (["--select", "tgl2"], False),
        (["--ignore", "TGL103"], False),
        (["--ignore", "TGL1"], False),
        (["--ignore", "TGL2"], True),
        (["--extend-ignore", "TGL10"], False),
        (["--select", "TGL2", "--extend-select", "TGL103"], True),
        (["--ignore", "TGL1", "--extend-select", "TGL103"], True),  # more specific wins
        (["--select", "TGL103", "--ignore", "TGL103"], False),  # tie: ignore wins
        (["--select", "TGL2", "--select", "TGL1"], True),  # repeated options add up
    ],
)
def test_select_and_ignore(tmp_path, options, reported):
    write(tmp_path, "a.py", BAD)
    result = run("check", *options, "a.py", cwd=tmp_path)
    assert result.returncode == (1 if reported else 0), err(result)


# --------------------------------------------------------------------------- discovery


def listed(result: subprocess.CompletedProcess) -> List[str]:
    assert result.returncode == 0, err(result)
    return out(result).splitlines()


def test_discovery_skips_vcs_caches_venvs_and_build_output(tmp_path):
    for relative in [
        "src/model.py",
        "src/sub/train.py",
        "env/step.py",  # a package named env, not a virtual environment: linted
        "venv/lib/x.py",
        ".venv/lib/x.py",
        "myenv/lib/x.py",
        ".git/hooks/x.py",
        ".hg/x.py",
        "src/__pycache__/model.py",
        ".tox/py/x.py",
        ".nox/x.py",
        "build/lib/x.py",
        "dist/x.py",
        "node_modules/x.py",
        "pkg.egg-info/x.py",
        "lib/site-packages/x.py",
        "src/notes.txt",
        "src/script.pyw",
    ]:
        write(tmp_path, relative, CLEAN)
    write(tmp_path, "venv/pyvenv.cfg", "home = /usr/bin\n")
    write(tmp_path, "myenv/pyvenv.cfg", "home = /usr/bin\n")
    assert listed(run("check", "--show-files", ".", cwd=tmp_path)) == [
        "env/step.py",
        "src/model.py",
        "src/sub/train.py",
    ]


def test_explicit_files_are_always_linted(tmp_path):
    write(tmp_path, "build/gen.py", CLEAN)
    write(tmp_path, "tools/script", CLEAN)
    write(tmp_path, "pyproject.toml", '[tool.torchgradlint]\nexclude = ["gen.py"]\n')
    assert listed(run("check", "--show-files", "build/gen.py", "tools/script", cwd=tmp_path)) == [
        "build/gen.py",
        "tools/script",
    ]
    # ... unless --force-exclude (for pre-commit, which names every changed file)
    assert listed(run("check", "--show-files", "--force-exclude", "build/gen.py", "tools/script",
                      cwd=tmp_path)) == ["tools/script"]


def test_explicit_directory_is_walked_even_if_its_name_is_skipped(tmp_path):
    write(tmp_path, "build/gen.py", CLEAN)
    assert listed(run("check", "--show-files", "build", cwd=tmp_path)) == ["build/gen.py"]


def test_configured_exclude_globs(tmp_path):
    for relative in ["src/a.py", "src/a_pb2.py", "src/data/b.py", "tests/data/c.py",
                     "tests/test_x.py"]:
        write(tmp_path, relative, CLEAN)
    write(tmp_path, "pyproject.toml",
          '[tool.torchgradlint]\nexclude = ["*_pb2.py", "tests/data", "data/"]\n')
    assert listed(run("check", "--show-files", ".", cwd=tmp_path)) == [
        "src/a.py",
        "tests/test_x.py",
    ]
    # relative patterns are relative to the configuration file, wherever we run from
    assert listed(run("check", "--show-files", "tests", cwd=tmp_path)) == ["tests/test_x.py"]
    assert listed(run("check", "--show-files", ".", cwd=tmp_path / "tests")) == ["test_x.py"]


def test_command_line_exclude_replaces_and_extend_exclude_adds(tmp_path):
    for relative in ["a.py", "b.py", "c.py"]:
        write(tmp_path, relative, CLEAN)
    write(tmp_path, "pyproject.toml", '[tool.torchgradlint]\nexclude = ["a.py"]\n')
    assert listed(run("check", "--show-files", "--exclude", "b.py", ".", cwd=tmp_path)) == [
        "a.py", "c.py"]
    assert listed(run("check", "--show-files", "--extend-exclude", "b.py", ".",
                      cwd=tmp_path)) == ["c.py"]


# --------------------------------------------------------------------------- unreadable files


def test_syntax_error_is_a_tgl001_finding(tmp_path):
    write(tmp_path, "broken.py", BROKEN)
    result = run("check", "broken.py", cwd=tmp_path)
    assert result.returncode == 1
    assert out(result) == "broken.py:3:7: TGL001 file not analysed: syntax error: invalid syntax\n"
    (message,) = err(result).splitlines()
    assert message.startswith("broken.py: cannot analyse: syntax error at line 3, column ")
    assert run("check", "--strict", "broken.py", cwd=tmp_path).returncode == 2
    assert run("check", "--extend-ignore", "TGL001", "broken.py", cwd=tmp_path).returncode == 0


TOO_DEEP = ("import torch\nimport torch.nn as nn\n\nmodel = nn.Linear(2, 2)\n\n\n"
            "def g(a):\n    x = a" + ".data" * 1200 + "\n    return model(x)\n")


def test_a_file_too_deep_to_analyse_is_a_tgl001_finding(tmp_path):
    """Parsed by Python but nested deeper than the analysis goes: no rule could look at it,
    and the CLI says so (a TGL001 finding, and why on stderr) instead of staying silent. Such
    files are analysed again on a deep stack, which takes everything Python itself parses; the
    limit of that second try is lowered here to the interpreter's default, so that it fails
    too."""
    write(tmp_path, "deep.py", TOO_DEEP)
    write(tmp_path, "bad.py", BAD)
    result = run("check", ".", cwd=tmp_path)
    assert result.returncode == 1
    assert codes_by_line(result) == [("bad.py", BAD_LINE, "TGL103")]
    assert err(result) == ""  # analysed on the deep stack: nothing to report in it
    shallow = "import sys, torchgradlint.engine as engine\n" \
              "engine.DEEP_RECURSION_LIMIT = sys.getrecursionlimit()\n" \
              "from torchgradlint.cli import main\nsys.exit(main(sys.argv[1:]))\n"
    for strict, status in ((False, 1), (True, 2)):
        result = run_python(shallow, "check", *(["--strict"] if strict else []), ".", cwd=tmp_path)
        assert result.returncode == status, err(result)
        assert codes_by_line(result) == [("bad.py", BAD_LINE, "TGL103"), ("deep.py", 1, "TGL001")]
        assert err(result).strip() == ("deep.py: cannot analyse: nested deeper than the "
                                       "analysis goes (Python's recursion limit)")


def run_python(script: str, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO)] + [p for p in [env.get("PYTHONPATH")] if p])
    env.pop("PYTHONWARNINGS", None)
    return subprocess.run([sys.executable, "-c", script, *args], cwd=str(cwd), input=b"",
                          capture_output=True, env=env, timeout=300)


def test_flake8_plugin_reports_a_file_too_deep_to_analyse(monkeypatch):
    """flake8 parsed it (no E999), the analysis cannot follow it even on its deep stack (its
    limit lowered to the interpreter's here): the plugin says TGL001."""
    import ast

    from torchgradlint import engine
    from torchgradlint.plugin import TorchGradLintPlugin

    monkeypatch.setattr(engine, "DEEP_RECURSION_LIMIT", sys.getrecursionlimit())

    tree = ast.parse(TOO_DEEP)
    lines = TOO_DEEP.splitlines(keepends=True)
    found = [(line, col, text.split()[0]) for line, col, text, _ in
             TorchGradLintPlugin(tree, lines, "deep.py").run()]
    assert found == [(1, 0, "TGL001")]


def test_syntax_error_next_to_findings(tmp_path):
    write(tmp_path, "broken.py", BROKEN)
    write(tmp_path, "bad.py", BAD)
    result = run("check", ".", cwd=tmp_path)
    assert result.returncode == 1
    assert codes_by_line(result) == [("bad.py", BAD_LINE, "TGL103"), ("broken.py", 3, "TGL001")]
    assert "broken.py: cannot analyse: syntax error" in err(result)
    assert run("check", "--strict", ".", cwd=tmp_path).returncode == 2


def test_undecodable_file(tmp_path):
    write(tmp_path, "latin.py", b'x = 1\nname = "caf\xe9"\n')
    result = run("check", "latin.py", cwd=tmp_path)
    assert result.returncode == 1
    why = "not valid utf-8 at line 2, column 12 (byte b'\\xe9': invalid continuation byte)"
    assert err(result).strip() == f"latin.py: cannot analyse: {why}"
    assert out(result) == f"latin.py:1:1: TGL001 file not analysed: {why}\n"
    assert run("check", "--strict", "latin.py", cwd=tmp_path).returncode == 2


def test_unknown_coding_cookie(tmp_path):
    write(tmp_path, "odd.py", b"# -*- coding: klingon -*-\nx = 1\n")
    result = run("check", "odd.py", cwd=tmp_path)
    assert result.returncode == 1
    assert err(result).strip() == "odd.py: cannot analyse: unknown encoding: klingon"
    assert codes_by_line(result) == [("odd.py", 1, "TGL001")]


def test_null_bytes(tmp_path):
    write(tmp_path, "nul.py", b"import torch\nx = 1\x00\n")
    result = run("check", "nul.py", cwd=tmp_path)
    assert result.returncode == 1
    assert err(result).startswith("nul.py: cannot analyse:")
    assert [code for _, _, code in codes_by_line(result)] == ["TGL001"]


def test_unanalysable_file_in_every_format(tmp_path):
    write(tmp_path, "broken.py", BROKEN)
    github = out(run("check", "--format", "github", ".", cwd=tmp_path))
    assert github == "::warning file=broken.py,line=3,col=7,title=TGL001::file not analysed: " \
                     "syntax error: invalid syntax\n"
    (item,) = json.loads(out(run("check", "--format", "json", ".", cwd=tmp_path)))
    assert (item["code"], item["line"], item["column"], item["fix"]) == ("TGL001", 3, 7, None)
    sarif = json.loads(out(run("check", "--format", "sarif", ".", cwd=tmp_path)))
    (result,) = sarif["runs"][0]["results"]
    assert result["ruleId"] == "TGL001"
    assert result["locations"][0]["physicalLocation"]["region"] == {"startLine": 3,
                                                                    "startColumn": 7}


def test_fix_reports_an_unanalysable_file_as_remaining(tmp_path):
    write(tmp_path, "broken.py", BROKEN)
    result = run("fix", "broken.py", cwd=tmp_path)
    assert result.returncode == 1
    assert codes_by_line(result) == [("broken.py", 3, "TGL001")]
    piped = run("fix", "-", cwd=tmp_path, stdin=BROKEN.encode())
    assert piped.returncode == 1 and out(piped) == BROKEN
    assert "-:3:7: TGL001 file not analysed" in err(piped)


# A finding after non-ASCII text on its line: `model.eval` starts at character 15 (0-based), at
# byte 21 (each é is two bytes in UTF-8), at UTF-16 code unit 15; after an emoji (one character,
# two UTF-16 code units, four UTF-8 bytes) at character 10 and code unit 11.
ACCENTS = 'import torch\n\n\ndef validate(model):\n    s = "ééé"; model.eval\n'
EMOJI = 'import torch\ns = "\U0001F600"; model.eval\n'


def test_columns_count_what_each_format_expects(tmp_path):
    write(tmp_path, "accents.py", ACCENTS)
    write(tmp_path, "emoji.py", EMOJI)
    text = out(run("check", ".", cwd=tmp_path))
    places = [line.split(": TGL")[0] for line in text.splitlines()]
    assert places == ["accents.py:5:16", "emoji.py:2:10"]
    items = json.loads(out(run("check", "--format", "json", ".", cwd=tmp_path)))
    assert [(i["line"], i["column"]) for i in items] == [(5, 16), (2, 10)]
    github = out(run("check", "--format", "github", ".", cwd=tmp_path))
    assert "line=5,col=16," in github and "line=2,col=10," in github
    sarif = json.loads(out(run("check", "--format", "sarif", ".", cwd=tmp_path)))
    regions = [r["locations"][0]["physicalLocation"]["region"] for r in sarif["runs"][0]["results"]]
    assert regions == [{"startLine": 5, "startColumn": 16}, {"startLine": 2, "startColumn": 11}]
    fixed = run("fix", "--diff", "--select", "TGL101", ".", cwd=tmp_path)  # nothing to fix
    assert [line.split(": TGL")[0] for line in out(fixed).splitlines()] == []
    remaining = run("fix", "--select", "TGL203", "--diff", "emoji.py", cwd=tmp_path)
    assert remaining.returncode == 1


def test_json_gives_each_finding_its_own_fix_safety(tmp_path):
    write(tmp_path, "a.py", BAD)
    (item,) = json.loads(out(run("check", "--format", "json", "a.py", cwd=tmp_path)))
    assert (item["fix_safety"], item["fix"]) == ("safe", "safe")


def test_bom_and_coding_cookie_files_are_decoded(tmp_path):
    write(tmp_path, "bom.py", b"\xef\xbb\xbf" + BAD.encode())
    write(tmp_path, "latin.py",
          ("# -*- coding: latin-1 -*-\n" + BAD.replace("pass", 'name = "café"')).encode("latin-1"))
    result = run("check", ".", cwd=tmp_path)
    assert result.returncode == 1, err(result)
    assert err(result) == ""
    assert codes_by_line(result) == [("bom.py", BAD_LINE, "TGL103"),
                                     ("latin.py", BAD_LINE + 1, "TGL103")]


# --------------------------------------------------------------------------- formats


def test_json_format(tmp_path):
    write(tmp_path, "a.py", BAD)
    text = run("check", "a.py", cwd=tmp_path)
    result = run("check", "--format", "json", "a.py", cwd=tmp_path)
    assert result.returncode == 1
    items = json.loads(out(result))
    assert isinstance(items, list) and len(items) == 1
    item = items[0]
    assert {"path", "line", "column", "code", "name", "message"} <= set(item)
    assert item["path"] == "a.py"
    assert item["line"] == BAD_LINE
    assert item["code"] == "TGL103"
    assert item["name"] == "grad-context-not-called"
    assert item["url"].endswith("/docs/rules/TGL103.md")
    assert out(text) == f"a.py:{item['line']}:{item['column']}: TGL103 {item['message']}\n"


def test_json_format_without_findings_is_an_empty_list(tmp_path):
    write(tmp_path, "clean.py", CLEAN)
    result = run("check", "--format", "json", "clean.py", cwd=tmp_path)
    assert json.loads(out(result)) == []


def check_sarif_document(document: dict) -> dict:
    """The parts of SARIF 2.1.0 GitHub code scanning relies on; returns the run."""
    assert document["version"] == "2.1.0"
    assert document["$schema"].endswith("sarif-2.1.0.json")
    (run_,) = document["runs"]
    driver = run_["tool"]["driver"]
    assert driver["name"] == "torchgradlint"
    assert driver["version"] == __version__
    assert driver["informationUri"].startswith("https://")
    assert [rule["id"] for rule in driver["rules"]] == [rule.code for rule in RULES]
    for rule, info in zip(driver["rules"], RULES):
        assert rule["name"] == info.name
        assert rule["shortDescription"]["text"] == info.summary
        assert rule["fullDescription"]["text"]
        assert rule["helpUri"].endswith(f"/docs/rules/{info.code}.md")
        assert rule["helpUri"].startswith("https://")
        assert rule["defaultConfiguration"]["level"] == "warning"
    for result in run_["results"]:
        assert driver["rules"][result["ruleIndex"]]["id"] == result["ruleId"]
        assert result["level"] in ("warning", "error", "note")
        assert result["message"]["text"]
        for location in result["locations"]:
            physical = location["physicalLocation"]
            assert physical["artifactLocation"]["uriBaseId"] == "%SRCROOT%"
            uri = physical["artifactLocation"]["uri"]
            assert not uri.startswith("/") and "\\" not in uri
            assert physical["region"]["startLine"] >= 1
            assert physical["region"]["startColumn"] >= 1
    return run_


def test_sarif_catalogue_and_notifications(tmp_path):
    write(tmp_path, "broken.py", BROKEN)
    result = run("check", "--format", "sarif", ".", cwd=tmp_path)
    assert result.returncode == 1
    run_ = check_sarif_document(json.loads(out(result)))
    assert [r["ruleId"] for r in run_["results"]] == ["TGL001"]
    (notification,) = run_["invocations"][0]["toolExecutionNotifications"]
    assert notification["message"]["text"].startswith("cannot analyse: syntax error")
    location = notification["locations"][0]["physicalLocation"]["artifactLocation"]
    assert location == {"uri": "broken.py", "uriBaseId": "%SRCROOT%"}


def test_sarif_results(tmp_path):
    write(tmp_path, "my models/net.py", BAD)
    text = run("check", ".", cwd=tmp_path)
    result = run("check", "--format", "sarif", ".", cwd=tmp_path)
    assert result.returncode == 1
    run_ = check_sarif_document(json.loads(out(result)))
    (finding,) = run_["results"]
    assert finding["ruleId"] == "TGL103"
    location = finding["locations"][0]["physicalLocation"]
    assert location["artifactLocation"]["uri"] == "my%20models/net.py"
    region = location["region"]
    assert out(text).startswith(f"my models/net.py:{region['startLine']}:{region['startColumn']}:")


def test_github_format(tmp_path):
    write(tmp_path, "pkg/a.py", BAD)
    result = run("check", "--format", "github", "pkg", cwd=tmp_path)
    assert result.returncode == 1
    (line,) = out(result).splitlines()
    assert line.startswith(f"::warning file=pkg/a.py,line={BAD_LINE},col=")
    assert ",title=TGL103::" in line
    assert "\n" not in line.split("::", 2)[2]


# --------------------------------------------------------------------------- configuration


def test_unknown_key_exits_2(tmp_path):
    write(tmp_path, "a.py", CLEAN)
    write(tmp_path, "pyproject.toml", '[tool.torchgradlint]\nselct = ["TGL1"]\n')
    result = run("check", "a.py", cwd=tmp_path)
    assert result.returncode == 2
    message = err(result)
    assert "unknown key 'selct'" in message and "did you mean 'select'" in message
    assert "pyproject.toml" in message


@pytest.mark.parametrize(
    "body, expected",
    [
        ('select = "TGL1"', "'select' must be a list of strings, got a string"),
        ("ignore = [101]", "'ignore' must be a list of strings"),
        ('no-grad-decorators = true', "'no-grad-decorators' must be a list of strings"),
        ('select = ["TGL999"]', "unknown rule code or prefix 'TGL999'"),
        ('select = ["TGL1"', "invalid TOML"),
    ],
)
def test_invalid_configuration_exits_2(tmp_path, body, expected):
    write(tmp_path, "a.py", CLEAN)
    write(tmp_path, "pyproject.toml", f"[tool.torchgradlint]\n{body}\n")
    result = run("check", "a.py", cwd=tmp_path)
    assert result.returncode == 2
    assert expected in err(result)


def test_configuration_is_found_from_the_first_path(tmp_path):
    project = tmp_path / "project"
    write(project, "pyproject.toml", '[tool.torchgradlint]\nexclude = ["skip_me.py"]\n')
    write(project, "src/skip_me.py", CLEAN)
    write(project, "src/keep.py", CLEAN)
    # pyproject.toml files without our table are passed over on the way up
    write(project, "src/pyproject.toml", '[tool.black]\nline-length = 100\n')
    result = run("check", "--show-files", "--verbose", "project/src", cwd=tmp_path)
    assert listed(result) == ["project/src/keep.py"]
    assert f"configuration: {project / 'pyproject.toml'}" in err(result)


def test_config_option_and_isolated(tmp_path):
    write(tmp_path, "a.py", CLEAN)
    write(tmp_path, "b.py", CLEAN)
    write(tmp_path, "pyproject.toml", '[tool.torchgradlint]\nexclude = ["a.py"]\n')
    write(tmp_path, "other.toml", '[tool.torchgradlint]\nexclude = ["b.py"]\n')
    assert listed(run("check", "--show-files", ".", cwd=tmp_path)) == ["b.py"]
    assert listed(run("check", "--show-files", "--config", "other.toml", ".", cwd=tmp_path)) == [
        "a.py"]
    assert listed(run("check", "--show-files", "--isolated", ".", cwd=tmp_path)) == [
        "a.py", "b.py"]
    result = run("check", "--config", "missing.toml", ".", cwd=tmp_path)
    assert result.returncode == 2 and "missing.toml" in err(result)
    write(tmp_path, "empty.toml", "[tool.other]\n")
    result = run("check", "--config", "empty.toml", ".", cwd=tmp_path)
    assert result.returncode == 2 and "no [tool.torchgradlint] table" in err(result)


def test_configured_select_and_ignore(tmp_path):
    write(tmp_path, "a.py", BAD)
    write(tmp_path, "pyproject.toml", '[tool.torchgradlint]\nignore = ["TGL103"]\n')
    assert run("check", "a.py", cwd=tmp_path).returncode == 0
    # --ignore on the command line replaces the configured list
    assert run("check", "--ignore", "TGL2", "a.py", cwd=tmp_path).returncode == 1
    # --extend-ignore adds to it
    write(tmp_path, "pyproject.toml", '[tool.torchgradlint]\nselect = ["TGL2"]\n')
    assert run("check", "a.py", cwd=tmp_path).returncode == 0
    assert run("check", "--extend-select", "TGL1", "a.py", cwd=tmp_path).returncode == 1
    assert run("check", "--select", "TGL1", "a.py", cwd=tmp_path).returncode == 1


def test_missing_toml_parser_is_a_clear_error(tmp_path, monkeypatch):
    from torchgradlint import pyproject_config

    write(tmp_path, "pyproject.toml", '[tool.torchgradlint]\nselect = ["TGL1"]\n')
    monkeypatch.setattr(pyproject_config, "_toml", None)
    with pytest.raises(pyproject_config.ConfigError, match="tomli"):
        pyproject_config.find_pyproject(str(tmp_path))


# --------------------------------------------------------------------------- rules and explain


def test_rules_lists_every_rule(tmp_path):
    result = run("rules", cwd=tmp_path)
    assert result.returncode == 0
    lines = out(result).splitlines()
    assert [line.split()[0] for line in lines[:len(RULES)]] == [rule.code for rule in RULES]
    for line, rule in zip(lines, RULES):
        assert rule.name in line and rule.summary in line
        words = {"safe": "safe", "unsafe": "unsafe", "none": "no"}
        assert line.split()[2] == words[rule.fix_safety]
    footnotes = lines[len(RULES):]  # the shapes in which a safe rule's fix is unsafe
    assert footnotes == [f"* {rule.code}: unsafe for {'; '.join(rule.unsafe_when)}"
                         for rule in RULES if rule.unsafe_when]
    data = json.loads(out(run("rules", "--format", "json", cwd=tmp_path)))
    assert [item["code"] for item in data] == [rule.code for rule in RULES]
    assert {item["fix_safety"] for item in data} <= {"safe", "unsafe", "none"}


@pytest.mark.parametrize("query", ["TGL101", "tgl101", "forward-with-autograd-in-evaluation"])
def test_explain_prints_the_rule_page(tmp_path, query):
    result = run("explain", query, cwd=tmp_path)
    assert result.returncode == 0
    page = REPO / "docs" / "rules" / "TGL101.md"
    if page.is_file():
        assert out(result) == page.read_text(encoding="utf-8").rstrip("\n") + "\n"
    else:
        assert out(result).startswith("# TGL101: forward-with-autograd-in-evaluation")


def test_explain_unknown_rule_exits_2(tmp_path):
    result = run("explain", "TGL999", cwd=tmp_path)
    assert result.returncode == 2
    assert "unknown rule 'TGL999'" in err(result)


# --------------------------------------------------------------------------- whole trees


def test_parallel_output_equals_serial_output(tmp_path):
    for number in range(12):
        write(tmp_path, f"pkg{number % 3}/m{number}.py", BAD if number % 2 else CLEAN)
    for fmt in ("text", "json"):
        serial = run("check", "--jobs", "1", "--format", fmt, ".", cwd=tmp_path)
        parallel = run("check", "--jobs", "4", "--format", fmt, ".", cwd=tmp_path)
        assert serial.returncode == parallel.returncode == 1
        assert out(serial) == out(parallel)
    assert len(codes_by_line(run("check", "--jobs", "4", ".", cwd=tmp_path))) == 6


def test_fixture_tree_parallel_equals_serial():
    serial = run("check", "--jobs", "1", "--isolated", "fixtures", cwd=REPO)
    parallel = run("check", "--jobs", "4", "--isolated", "fixtures", cwd=REPO)
    assert out(serial) == out(parallel)
    assert serial.returncode == parallel.returncode


FIXTURE_FILES = sorted(path.relative_to(REPO).as_posix() for path in FIXTURES.rglob("*.py"))


@pytest.fixture(scope="module")
def fixture_findings():
    """One CLI run over the whole fixture tree: {path: [(line, code), ...]}."""
    result = run("check", "--isolated", "--format", "json", "fixtures", cwd=REPO)
    assert result.returncode in (0, 1), err(result)
    found = {}
    for item in json.loads(out(result)):
        found.setdefault(item["path"], []).append((item["line"], item["code"]))
    return found


@pytest.mark.parametrize("fixture", FIXTURE_FILES)
def test_fixture_marks_match_cli_findings(fixture_findings, fixture):
    """The CLI reports exactly the ``# expect:`` marks of the fixture (the static side)."""
    marks = FixtureMarks.parse((REPO / fixture).read_text(encoding="utf-8"))
    assert sorted(fixture_findings.get(fixture, [])) == sorted(marks.static)


def _flake8_has_plugin() -> bool:
    try:
        result = subprocess.run([sys.executable, "-m", "flake8", "--version"],
                                capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.SubprocessError):
        return False
    return result.returncode == 0 and "torchgradlint" in result.stdout


@pytest.mark.skipif(not _flake8_has_plugin(), reason="the flake8 plugin is not installed")
def test_cli_and_flake8_plugin_agree_on_the_fixtures():
    """One engine, two doors: the same findings, lines and columns through flake8 and the CLI."""
    cli = run("check", "--isolated", "fixtures", cwd=REPO)
    flake8 = subprocess.run(
        [sys.executable, "-m", "flake8", "--isolated", "--select", "TGL", "fixtures"],
        cwd=str(REPO), capture_output=True, text=True, timeout=600,
    )
    assert flake8.returncode in (0, 1), flake8.stderr
    assert sorted(out(cli).splitlines()) == sorted(flake8.stdout.splitlines())


# --------------------------------------------------------------------------- units


def test_noqa_reads_comments_like_flake8():
    """Our noqa pattern and flake8's accept the same comments with the same codes."""
    from hypothesis import given, settings, strategies as st
    from flake8.defaults import NOQA_INLINE_REGEXP
    from flake8.utils import parse_comma_separated_list

    from torchgradlint.noqa import silences

    pieces = st.sampled_from(["# noqa", "# NOQA", "#noqa", ":", ": ", ":  ", "TGL1", "TGL103",
                              "tgl103", "TGL", "E501", ",", " ", ", ", "\t", "x", "#", "\n"])

    @settings(max_examples=600, deadline=None)
    @given(st.lists(pieces, max_size=8).map("".join), st.sampled_from(["TGL103", "TGL201"]))
    def agree(line, code):
        match = NOQA_INLINE_REGEXP.search(line)
        if match is None:
            expected = False
        elif match.group("codes") is None:
            expected = True
        else:
            listed_codes = parse_comma_separated_list(match.group("codes"))
            expected = code.startswith(tuple(listed_codes))
        assert silences(line, code) == expected

    agree()


def test_noqa_covers_every_line_of_a_multiline_token():
    from torchgradlint.findings import Finding
    from torchgradlint.noqa import apply_noqa

    source = 'x = """\nlong\n"""  # noqa: TGL103\ny = f(\n    1)  # noqa\n'
    findings = [Finding("TGL103", line, 0, "m") for line in range(1, 6)]
    # lines 1-3 form one token; line 4 is its own token group (NL inside brackets), as in flake8
    assert [f.line for f in apply_noqa(source, findings)] == [4]


def test_resolve_codes_prefers_the_more_specific_entry():
    from torchgradlint.pyproject_config import resolve_codes

    every = tuple(rule.code for rule in RULES)
    assert resolve_codes(None) == every
    assert resolve_codes(["TGL1"]) == tuple(c for c in every if c.startswith("TGL1"))
    assert "TGL103" in resolve_codes(None, ["TGL103"], ["TGL1"])
    assert "TGL101" not in resolve_codes(None, ["TGL103"], ["TGL1"])
    assert "TGL103" not in resolve_codes(["TGL103"], [], ["TGL103"])


def test_read_source_handles_bom_cookie_and_bad_bytes(tmp_path):
    from torchgradlint.sourcefile import SourceError, read_source

    assert read_source(write(tmp_path, "bom.py", b"\xef\xbb\xbfx = 1\n")) == "x = 1\n"
    latin = write(tmp_path, "latin.py", '# coding: latin-1\nx = "é"\n'.encode("latin-1"))
    assert read_source(latin) == '# coding: latin-1\nx = "é"\n'
    crlf = write(tmp_path, "crlf.py", b"x = 1\r\ny = 2\r\n")
    assert read_source(crlf) == "x = 1\r\ny = 2\r\n"  # line endings are kept
    for data, reason in [
        (b"\xef\xbb\xbf# coding: latin-1\n", "byte order mark contradicts"),
        (b"\xff\xfe = 1\n", "not valid utf-8 at line 1, column 1"),
        (b"# coding: nope\n", "unknown encoding: nope"),
    ]:
        with pytest.raises(SourceError, match=reason) as caught:
            read_source(write(tmp_path, "x.py", data))
        assert caught.value.path.endswith("x.py")
    with pytest.raises(SourceError, match="no such file"):
        read_source(tmp_path / "missing.py")


def test_sarif_location_outside_the_source_root(tmp_path):
    from torchgradlint.findings import Finding
    from torchgradlint.output import Report, format_sarif

    root = tmp_path / "repo"
    root.mkdir()
    inside = Report(str(root / "pkg" / "a b.py"), Finding("TGL103", 3, 5, "m"))
    outside = Report(str(tmp_path / "elsewhere.py"), Finding("TGL103", 1, 0, "m"))
    document = json.loads(format_sarif([inside, outside], root=str(root)))
    locations = [r["locations"][0]["physicalLocation"] for r in document["runs"][0]["results"]]
    assert locations[0]["artifactLocation"] == {"uri": "pkg/a%20b.py", "uriBaseId": "%SRCROOT%"}
    assert locations[0]["region"] == {"startLine": 3, "startColumn": 6}
    assert locations[1]["artifactLocation"] == {"uri": (tmp_path / "elsewhere.py").as_uri()}
    assert document["runs"][0]["originalUriBaseIds"]["%SRCROOT%"]["uri"] == root.as_uri() + "/"


def test_github_annotations_escape_their_fields():
    from torchgradlint.findings import Finding
    from torchgradlint.output import Report, format_github

    report = Report("dir,1/a:b.py", Finding("TGL101", 7, 0, "100% sure:\nreally"))
    assert format_github([report]) == (
        "::warning file=dir%2C1/a%3Ab.py,line=7,col=1,title=TGL101::100%25 sure:%0Areally\n"
    )


def test_exclude_pattern_forms(tmp_path):
    from torchgradlint.discovery import ExcludePattern, is_excluded

    target = str(write(tmp_path, "src/gen/model.py", CLEAN))
    base = str(tmp_path)
    gen = str(tmp_path / "src" / "gen")
    assert is_excluded(gen, [ExcludePattern.make(gen, "/")])  # absolute
    assert is_excluded(gen, [ExcludePattern.make("src/gen/", base)])  # trailing slash
    assert is_excluded(target, [ExcludePattern.make("./src/gen/*", base)])
    assert is_excluded(target, [ExcludePattern.make("src/*/model.py", base)])
    assert is_excluded(target, [ExcludePattern.make("model.py", str(tmp_path / "other"))])
    assert not is_excluded(target, [ExcludePattern.make("gen/model.py", base)])
    # a file inside an excluded folder (what --force-exclude checks for named files)
    assert not is_excluded(target, [ExcludePattern.make("src/gen", base)])
    assert is_excluded(target, [ExcludePattern.make("src/gen", base)], folders=True)
    assert is_excluded(target, [ExcludePattern.make("gen", base)], folders=True)
    # ... but only folders inside the pattern's base directory count
    assert not is_excluded(target, [ExcludePattern.make(tmp_path.name, base)], folders=True)


def test_force_exclude_covers_files_inside_excluded_folders(tmp_path):
    write(tmp_path, "tests/data/sample.py", CLEAN)
    write(tmp_path, "tests/test_a.py", CLEAN)
    write(tmp_path, "pyproject.toml", '[tool.torchgradlint]\nexclude = ["tests/data"]\n')
    named = ["tests/data/sample.py", "tests/test_a.py"]
    assert listed(run("check", "--show-files", *named, cwd=tmp_path)) == named
    assert listed(run("check", "--show-files", "--force-exclude", *named, cwd=tmp_path)) == [
        "tests/test_a.py"]


# --------------------------------------------------------------------------- -v: unknown modes

UNFOLLOWED = '''import torch


@torch.no_grad()
def evaluate(model, batches):
    return [model(x) for x in batches]


def run(cfg, batches, flag):
    net = build(cfg)
    net.train(flag)
    with torch.no_grad():
        return [net(x) for x in batches]
'''


def test_verbose_notes_models_whose_mode_stays_unknown(tmp_path):
    write(tmp_path, "infer.py", UNFOLLOWED)
    quiet = run("check", "infer.py", cwd=tmp_path)
    assert quiet.returncode == 0 and "note:" not in err(quiet)
    result = run("check", "-v", "infer.py", cwd=tmp_path)
    assert result.returncode == 0 and out(result) == ""  # notes are no findings
    notes = [line for line in err(result).splitlines() if ": note: " in line]
    assert len(notes) == 2
    assert notes[0].startswith("infer.py:6: note: `model` in evaluate(): mode unknown")
    assert "a parameter of evaluate() that no code in the project passes" in notes[0]
    assert notes[1].startswith("infer.py:13: note: `net` in run(): mode unknown")
    assert "`net.train(flag)` at line 11" in notes[1]
