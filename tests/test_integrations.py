"""The integrations users rely on, run for real: pre-commit, a language server, config snippets.

- ``.pre-commit-hooks.yaml``: pre-commit installs this repository into a fresh virtual environment
  (pip, with the dependencies from PyPI) and runs the hooks on throw-away git repositories, once
  through ``pre-commit try-repo`` and then through a ``.pre-commit-config.yaml`` naming the
  repository, as users do (that environment is built once and reused). pre-commit only sees
  committed files, so the working tree (tracked files and untracked, not ignored ones) is first
  copied into a temporary repository and committed there.
- python-lsp-server's flake8 plugin: the server is driven over stdio with JSON-RPC framing and must
  publish the TGL diagnostic of a fixture at the fixture's marked line.
- Documentation: the ``[flake8]`` snippet in README.md is run as written; the pylsp settings and
  the pre-commit examples in docs/integrations.md are the ones these tests use.
"""

from __future__ import annotations

import configparser
import json
import os
import queue
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

import pytest

from torchgradlint.engine import lint_file
from fixture_marks import FixtureMarks

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "fixtures"
BAD_FIXTURE = FIXTURES / "TGL103" / "bad_with_no_grad_uncalled.py"  # one finding, a safe fix
UNFIXABLE_FIXTURE = FIXTURES / "TGL102" / "bad_decorated_train_step.py"  # TGL102 has no fix
CLEAN = (
    "import torch\n\n\n"
    "def predict(model, x):\n"
    "    model.eval()\n"
    "    with torch.no_grad():\n"
    "        return model(x)\n"
)

# First run builds pre-commit's environment (pip install of this repository): allow for a slow
# index; later runs reuse it.
INSTALL_TIMEOUT = 600
RUN_TIMEOUT = 120
LSP_TIMEOUT = 60


def marked(path: Path) -> List[tuple]:
    """(line, code) of the findings a fixture's ``# expect:`` marks promise to the linter."""
    return FixtureMarks.parse(path.read_text(encoding="utf-8")).static


def test_fixtures_are_what_these_tests_assume():
    assert [code for _, code in marked(BAD_FIXTURE)] == ["TGL103"]
    assert [code for _, code in marked(UNFIXABLE_FIXTURE)] == ["TGL102"]
    for path in (BAD_FIXTURE, UNFIXABLE_FIXTURE):
        assert sorted((f.line, f.code) for f in lint_file(str(path))) == marked(path)


# --------------------------------------------------------------------------- git and pre-commit


def git_env() -> Dict[str, str]:
    """An environment in which git ignores the user's and the system's configuration and any
    repository the tests themselves may be running in (as a git hook, say)."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("GIT_")}
    env.update(
        GIT_CONFIG_NOSYSTEM="1",
        GIT_CONFIG_GLOBAL=os.devnull,
        GIT_AUTHOR_NAME="torchgradlint tests",
        GIT_AUTHOR_EMAIL="tests@example.invalid",
        GIT_COMMITTER_NAME="torchgradlint tests",
        GIT_COMMITTER_EMAIL="tests@example.invalid",
    )
    return env


def git(*args: str, cwd: Path) -> str:
    done = subprocess.run(["git", "-c", "commit.gpgsign=false", "-c", "init.defaultBranch=main",
                           *args], cwd=str(cwd), env=git_env(), capture_output=True, text=True,
                          timeout=RUN_TIMEOUT)
    assert done.returncode == 0, f"git {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def git_repository(path: Path, files: Dict[str, str]) -> Path:
    """A new repository at ``path`` holding ``files`` (relative name -> text), committed."""
    path.mkdir(parents=True)
    for name, text in files.items():
        target = path / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
    git("init", "-q", cwd=path)
    git("add", "-A", cwd=path)
    git("commit", "-q", "-m", "project", cwd=path)
    return path


def snapshot_of_working_tree(dest: Path) -> str:
    """Copy this repository's working tree (tracked files as they are now, plus untracked files
    that are not ignored) into a new repository at ``dest``, commit, and return the commit."""
    listed = git("ls-files", "-z", "--cached", "--others", "--exclude-standard", cwd=REPO)
    dest.mkdir(parents=True)
    for name in sorted(set(filter(None, listed.split("\0")))):
        source = REPO / name
        if source.is_symlink() or not source.is_file():  # deleted in the working tree
            continue
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)
    git("init", "-q", cwd=dest)
    git("add", "-A", cwd=dest)
    git("commit", "-q", "-m", "working tree of torchgradlint", cwd=dest)
    return git("rev-parse", "HEAD", cwd=dest).strip()


DOCUMENTED_REPO = "https://github.com/torchgradlint/torchgradlint"
# The hook lists docs/integrations.md shows (checked by test_documented_pre_commit_configs).
CHECK_ONLY = ["torchgradlint"]
FIX_ONLY = ["torchgradlint-fix"]


class HookRepo:
    """The snapshot of this working tree, as a hook repository at ``rev``.

    ``try-repo`` builds the hook environment in a fresh temporary store on every call (~30 s);
    ``run`` with a configuration naming the snapshot and its ``rev`` -- what a user's
    ``.pre-commit-config.yaml`` does -- builds it once in ``home`` and reuses it.
    """

    def __init__(self, path: Path, rev: str, home: Path):
        self.path, self.rev, self.home = path, rev, home

    def pre_commit(self, *args: str, cwd: Path) -> subprocess.CompletedProcess:
        env = git_env()
        env.update(PRE_COMMIT_HOME=str(self.home), PRE_COMMIT_COLOR="never",
                   PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_NO_INPUT="1")
        env.pop("PYTHONPATH", None)  # the hook must run the copy pre-commit installed
        started = time.monotonic()
        done = subprocess.run([sys.executable, "-m", "pre_commit", *args], cwd=str(cwd), env=env,
                              capture_output=True, text=True, timeout=INSTALL_TIMEOUT)
        print(f"pre-commit {args[0]} in {cwd.name}: {time.monotonic() - started:.1f} s")
        return done

    def try_repo(self, cwd: Path, hook: Optional[str] = None) -> subprocess.CompletedProcess:
        """``pre-commit try-repo``: every hook of the repository, or ``hook``."""
        return self.pre_commit("try-repo", str(self.path), *([hook] if hook else []),
                               "--ref", self.rev, "--all-files", "--color", "never", cwd=cwd)

    def config(self, hooks: List[str]) -> str:
        """A ``.pre-commit-config.yaml`` running ``hooks`` from this repository."""
        listed = "".join(f"      - id: {hook}\n" for hook in hooks)
        return f"repos:\n  - repo: {self.path}\n    rev: {self.rev}\n    hooks:\n{listed}"

    def run(self, cwd: Path) -> subprocess.CompletedProcess:
        """``pre-commit run --all-files`` with the repository's own configuration."""
        return self.pre_commit("run", "--all-files", "--color", "never", cwd=cwd)


@pytest.fixture(scope="module")
def hook_repo(tmp_path_factory) -> HookRepo:
    pytest.importorskip("pre_commit", reason="pre-commit is part of the test extra")
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("needs git and a git checkout of torchgradlint")
    base = tmp_path_factory.mktemp("pre-commit")
    rev = snapshot_of_working_tree(base / "torchgradlint")
    return HookRepo(base / "torchgradlint", rev, base / "home")


def show(done: subprocess.CompletedProcess) -> str:
    return f"exit {done.returncode}\n--- stdout\n{done.stdout}\n--- stderr\n{done.stderr}"


def fix_command_available() -> bool:
    """``torchgradlint fix`` exists (it was written after the hook was declared)."""
    done = subprocess.run([sys.executable, "-m", "torchgradlint", "fix", "--help"],
                          cwd=str(REPO), capture_output=True, text=True, timeout=RUN_TIMEOUT)
    return done.returncode == 0


def hook_status(hook_name: str, status: str, output: str) -> bool:
    """pre-commit's summary line for a hook: ``name......Passed``."""
    return re.search(rf"^{re.escape(hook_name)}\.+{status}$", output, re.M) is not None


def test_hook_definitions():
    yaml = pytest.importorskip("yaml")
    manifest = yaml.safe_load((REPO / ".pre-commit-hooks.yaml").read_text(encoding="utf-8"))
    hooks = {hook["id"]: hook for hook in manifest}
    assert set(hooks) == {"torchgradlint", "torchgradlint-fix"}
    assert hooks["torchgradlint"]["entry"] == "torchgradlint check --force-exclude"
    assert hooks["torchgradlint-fix"]["entry"] == "torchgradlint fix --force-exclude"
    for hook in hooks.values():
        assert hook["language"] == "python"
        assert hook["types"] == ["python"]
        assert hook["require_serial"] is False
        # the entry's options exist: argparse exits 2 on an unknown option
        command = hook["entry"].split()[1:]
        if command[0] == "fix" and not fix_command_available():
            continue
        done = subprocess.run([sys.executable, "-m", "torchgradlint", *command, "--show-files"],
                              cwd=str(REPO), capture_output=True, text=True, timeout=RUN_TIMEOUT)
        assert done.returncode == 0, show(done)


def test_pre_commit_try_repo(hook_repo, tmp_path):
    """``pre-commit try-repo`` installs the hooks from the repository and runs them all: the
    check hook fails with the finding, the fix hook repairs the file."""
    fix = fix_command_available()
    bad_line = marked(BAD_FIXTURE)[0][0]
    bad = git_repository(tmp_path / "bad", {
        "train.py": BAD_FIXTURE.read_text(encoding="utf-8"),
        "predict.py": CLEAN,
        "README.md": "with torch.no_grad:  not Python, not linted\n",
    })
    # every hook of the manifest, in id order: torchgradlint, then torchgradlint-fix
    done = hook_repo.try_repo(cwd=bad, hook=None if fix else "torchgradlint")
    assert done.returncode == 1, show(done)
    assert hook_status("torchgradlint", "Failed", done.stdout), show(done)
    assert re.search(rf"^train\.py:{bad_line}:\d+: TGL103 ", done.stdout, re.M), show(done)
    assert "predict.py:" not in done.stdout and "README.md:" not in done.stdout, show(done)
    assert (bad / "predict.py").read_text(encoding="utf-8") == CLEAN
    if fix:
        assert hook_status("torchgradlint (fix)", "Failed", done.stdout), show(done)
        assert "files were modified by this hook" in done.stdout, show(done)
        fixed = (bad / "train.py").read_text(encoding="utf-8").splitlines()
        assert fixed[bad_line - 1].lstrip().startswith("with torch.no_grad():"), show(done)


def test_pre_commit_check_hook(hook_repo, tmp_path):
    bad_line = marked(BAD_FIXTURE)[0][0]
    bad = git_repository(tmp_path / "bad", {
        ".pre-commit-config.yaml": hook_repo.config(CHECK_ONLY),
        "train.py": BAD_FIXTURE.read_text(encoding="utf-8"),
        "predict.py": CLEAN,
    })
    done = hook_repo.run(cwd=bad)
    assert done.returncode == 1, show(done)
    assert re.search(rf"^train\.py:{bad_line}:\d+: TGL103 ", done.stdout, re.M), show(done)
    assert (bad / "train.py").read_text(encoding="utf-8") == BAD_FIXTURE.read_text(encoding="utf-8")

    clean = git_repository(tmp_path / "clean", {
        ".pre-commit-config.yaml": hook_repo.config(CHECK_ONLY),
        "predict.py": CLEAN,
    })
    done = hook_repo.run(cwd=clean)
    assert done.returncode == 0, show(done)
    assert hook_status("torchgradlint", "Passed", done.stdout), show(done)

    # pre-commit names every file; --force-exclude makes [tool.torchgradlint] exclude apply.
    excluded = git_repository(tmp_path / "excluded", {
        ".pre-commit-config.yaml": hook_repo.config(CHECK_ONLY),
        "pyproject.toml": '[tool.torchgradlint]\nexclude = ["generated"]\n',
        "predict.py": CLEAN,
        "generated/train.py": BAD_FIXTURE.read_text(encoding="utf-8"),
    })
    done = hook_repo.run(cwd=excluded)
    assert done.returncode == 0, show(done)
    assert "TGL103" not in done.stdout, show(done)


def test_pre_commit_fix_hook(hook_repo, tmp_path):
    if not fix_command_available():
        pytest.skip("`torchgradlint fix` does not exist yet")
    bad_line = marked(BAD_FIXTURE)[0][0]
    project = git_repository(tmp_path / "project", {
        ".pre-commit-config.yaml": hook_repo.config(FIX_ONLY),
        "train.py": BAD_FIXTURE.read_text(encoding="utf-8"),
        "predict.py": CLEAN,
    })
    done = hook_repo.run(cwd=project)
    assert done.returncode == 1, show(done)  # pre-commit fails a hook that modifies files
    assert hook_status("torchgradlint (fix)", "Failed", done.stdout), show(done)
    assert "files were modified by this hook" in done.stdout, show(done)
    fixed = (project / "train.py").read_text(encoding="utf-8").splitlines()
    assert fixed[bad_line - 1].lstrip().startswith("with torch.no_grad():"), show(done)
    assert (project / "predict.py").read_text(encoding="utf-8") == CLEAN
    assert lint_file(str(project / "train.py")) == []

    done = hook_repo.run(cwd=project)  # nothing left to fix
    assert done.returncode == 0, show(done)
    assert hook_status("torchgradlint (fix)", "Passed", done.stdout), show(done)

    # what cannot be fixed is reported, as by the check hook, and the file is left alone
    unfixable = UNFIXABLE_FIXTURE.read_text(encoding="utf-8")
    (code_line, code), = marked(UNFIXABLE_FIXTURE)
    project = git_repository(tmp_path / "unfixable", {
        ".pre-commit-config.yaml": hook_repo.config(FIX_ONLY),
        "train.py": unfixable,
    })
    done = hook_repo.run(cwd=project)
    assert done.returncode == 1, show(done)
    assert hook_status("torchgradlint (fix)", "Failed", done.stdout), show(done)
    assert re.search(rf"^train\.py:{code_line}:\d+: {code} ", done.stdout, re.M), show(done)
    assert (project / "train.py").read_text(encoding="utf-8") == unfixable


def fenced_blocks(markdown: str, language: str) -> List[str]:
    return re.findall(rf"^```{language}\n(.*?)^```", markdown, re.M | re.S)


def test_documented_pre_commit_configs():
    """docs/integrations.md's configurations name published hooks, and its first two examples
    are the hook lists run above."""
    yaml = pytest.importorskip("yaml")
    docs = (REPO / "docs" / "integrations.md").read_text(encoding="utf-8")
    blocks = [yaml.safe_load(block) for block in fenced_blocks(docs, "yaml")]  # all valid YAML
    configs = [block for block in blocks if isinstance(block, dict) and "repos" in block]
    published = {hook["id"] for hook in
                 yaml.safe_load((REPO / ".pre-commit-hooks.yaml").read_text(encoding="utf-8"))}
    ours = []
    for config in configs:
        for repo in config["repos"]:
            assert repo.get("rev") and repo.get("hooks"), repo
            if repo["repo"] == DOCUMENTED_REPO:
                ids = [hook["id"] for hook in repo["hooks"]]
                assert set(ids) <= published, repo
                ours.append(ids)
    assert ours[:2] == [CHECK_ONLY, FIX_ONLY]


# --------------------------------------------------------------------------- the README snippet


def readme_flake8_snippet() -> str:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    snippets = [block for block in fenced_blocks(readme, "ini") if "[flake8]" in block]
    assert len(snippets) == 1, snippets
    return snippets[0]


EVALUATE_WITH_HELPER = '''\
import torch.nn as nn
from utils import {decorator}


@{decorator}()
def evaluate(model, loader):
    model.eval()
    correct = 0
    for x, y in loader:
        correct += (model(x).argmax(1) == y).sum().item()
    return correct


def main(loader):
    model = nn.Sequential(nn.Linear(8, 2), nn.Dropout())
    return evaluate(model, loader)
'''

PREDICT_WITH_CONSTRUCTOR = '''\
import torch
from utils import {constructor}


def predict(loader):
    thing = {constructor}()
    return torch.cat([thing(x).argmax(1) for x in loader])
'''


def flake8(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    return subprocess.run([sys.executable, "-m", "flake8", *args], cwd=str(cwd), env=env,
                          capture_output=True, text=True, timeout=RUN_TIMEOUT)


def tgl_lines(output: str) -> List[str]:
    return [line for line in output.splitlines() if re.match(r"[^:]+:\d+:\d+: TGL\d{3} ", line)]


def reported(found: List[str], path: str, code: str, line: Optional[int] = None) -> bool:
    """flake8 reported ``code`` in ``path`` (at ``line``)."""
    where = f"./{path}:{line}:" if line else f"./{path}:"
    return any(text.startswith(where) and f" {code} " in text for text in found)


@pytest.mark.parametrize("config_name", ["setup.cfg", "tox.ini", ".flake8"])
def test_readme_flake8_snippet(tmp_path, config_name):
    """The README's [flake8] block, saved under each name it mentions, selects the TGL codes and
    its ``tgl-`` settings reach the plugin."""
    snippet = readme_flake8_snippet()
    parser = configparser.ConfigParser()
    parser.read_string(snippet)
    settings = parser["flake8"]
    assert "TGL" in settings["extend-select"].split(",")
    decorator = settings["tgl-no-grad-decorators"].split(",")[0].strip()
    constructor = settings["tgl-model-constructors"].split(",")[0].strip()

    bad_line = marked(BAD_FIXTURE)[0][0]
    (tmp_path / "train.py").write_text(BAD_FIXTURE.read_text(encoding="utf-8"), encoding="utf-8")
    (tmp_path / "evaluate.py").write_text(EVALUATE_WITH_HELPER.format(decorator=decorator),
                                          encoding="utf-8")
    (tmp_path / "predict.py").write_text(PREDICT_WITH_CONSTRUCTOR.format(constructor=constructor),
                                         encoding="utf-8")
    forward_line = next(number for number, text in
                        enumerate(PREDICT_WITH_CONSTRUCTOR.splitlines(), 1) if "thing(x)" in text)
    (tmp_path / "style.py").write_text("import os\n", encoding="utf-8")  # F401, not TGL

    # Without configuration: the bug in train.py; the constructor's result is not known as a model.
    done = flake8(tmp_path, "--isolated")
    found = tgl_lines(done.stdout)
    assert reported(found, "train.py", "TGL103", bad_line), done.stdout
    assert not any(line.startswith("./predict.py:") for line in found), done.stdout

    (tmp_path / config_name).write_text(snippet, encoding="utf-8")
    done = flake8(tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    found = tgl_lines(done.stdout)
    assert reported(found, "train.py", "TGL103", bad_line), done.stdout
    # the configured constructor makes `thing` a model: its forward pass in predict() is evaluation
    assert reported(found, "predict.py", "TGL101", forward_line), done.stdout
    # the configured decorator disables autograd in evaluate()
    assert not any(line.startswith("./evaluate.py:") for line in found), done.stdout
    # extend-select keeps flake8's own checks
    assert re.search(r"^\./style\.py:1:1: F401 ", done.stdout, re.M), done.stdout


def test_flake8_reads_the_decorator_setting_from_its_config(tmp_path):
    """The README's decorator name is one torchgradlint recognises anyway; a project-specific name
    shows that the ``tgl-no-grad-decorators`` key, spelt as in the README, is read."""
    snippet = readme_flake8_snippet()
    key_line = next(line for line in snippet.splitlines()
                    if line.startswith("tgl-no-grad-decorators"))
    (tmp_path / "evaluate.py").write_text(EVALUATE_WITH_HELPER.format(decorator="eval_guard"),
                                          encoding="utf-8")
    (tmp_path / "setup.cfg").write_text(snippet, encoding="utf-8")
    done = flake8(tmp_path, "--select=TGL")
    codes = [line.split(": ")[1].split()[0] for line in tgl_lines(done.stdout)]
    assert codes == ["TGL101"], done.stdout

    (tmp_path / "setup.cfg").write_text(
        snippet.replace(key_line, key_line.split("=")[0] + "= eval_guard"), encoding="utf-8")
    done = flake8(tmp_path, "--select=TGL")
    assert done.returncode == 0 and tgl_lines(done.stdout) == [], done.stdout + done.stderr


# --------------------------------------------------------------------------- language server


class LanguageServer:
    """A minimal LSP client: JSON-RPC 2.0 over the server's stdin/stdout, Content-Length framed."""

    def __init__(self, command: List[str], cwd: Path, env: Dict[str, str]):
        self.process = subprocess.Popen(command, cwd=str(cwd), env=env, stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.incoming: "queue.Queue[Optional[Dict[str, Any]]]" = queue.Queue()
        self.stderr: List[bytes] = []
        self.notifications: List[Dict[str, Any]] = []
        self.next_id = 0
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=lambda: self.stderr.extend(self.process.stderr),
                         daemon=True).start()

    def _read(self) -> None:
        stream = self.process.stdout
        try:
            while True:
                headers = {}
                while True:
                    line = stream.readline()
                    if not line:
                        return
                    line = line.strip()
                    if not line:
                        break
                    name, _, value = line.decode("ascii").partition(":")
                    headers[name.strip().lower()] = value.strip()
                body = stream.read(int(headers["content-length"]))
                self.incoming.put(json.loads(body.decode("utf-8")))
        finally:
            self.incoming.put(None)

    def send(self, message: Dict[str, Any]) -> None:
        body = json.dumps({"jsonrpc": "2.0", **message}).encode("utf-8")
        self.process.stdin.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
        self.process.stdin.flush()

    def notify(self, method: str, params: Any) -> None:
        self.send({"method": method, "params": params})

    def request(self, method: str, params: Any, timeout: float = LSP_TIMEOUT) -> Any:
        self.next_id += 1
        wanted = self.next_id
        self.send({"id": wanted, "method": method, "params": params})
        reply = self.wait_for(lambda m: m.get("id") == wanted and "method" not in m, timeout,
                              f"the reply to {method}")
        assert "error" not in reply, reply
        return reply.get("result")

    def wait_for(self, predicate: Callable[[Dict[str, Any]], bool], timeout: float,
                 what: str) -> Dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            try:
                message = self.incoming.get(timeout=max(remaining, 0.01))
            except queue.Empty:
                message = None
                remaining = 0
            if message is None:
                pytest.fail(f"no {what} from the language server within {timeout} s "
                            f"(exit status {self.process.poll()}); stderr:\n"
                            + b"".join(self.stderr).decode("utf-8", "replace")[-4000:])
            if "method" in message and "id" in message:  # a request from the server
                self.send({"id": message["id"], "result": None})
            elif "method" in message:
                self.notifications.append(message)
            if predicate(message):
                return message

    def close(self) -> None:
        try:
            if self.process.poll() is None:
                self.request("shutdown", None, timeout=10)
                self.notify("exit", None)
                self.process.wait(timeout=10)
        except Exception:  # noqa: BLE001 -- the test's own failure matters more
            pass
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait(timeout=10)


PYLSP_SETTINGS = {"pylsp": {"plugins": {
    "flake8": {"enabled": True},
    "pycodestyle": {"enabled": False},
    "pyflakes": {"enabled": False},
    "mccabe": {"enabled": False},
}}}


def test_documented_pylsp_settings_are_the_tested_ones():
    docs = (REPO / "docs" / "integrations.md").read_text(encoding="utf-8")
    documented = [json.loads(block) for block in fenced_blocks(docs, "json") if '"pylsp"' in block]
    assert documented == [PYLSP_SETTINGS]


def test_python_lsp_server_flake8_plugin(tmp_path):
    pytest.importorskip("pylsp", reason="python-lsp-server is part of the test extra")
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    document = workspace / "train.py"
    text = BAD_FIXTURE.read_text(encoding="utf-8")
    document.write_text(text, encoding="utf-8")
    expected = {(f.line - 1, f.col, f.code) for f in lint_file(str(BAD_FIXTURE))}
    assert expected

    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    # the plugin runs the `flake8` on PATH, as in an editor: the one next to this Python
    env["PATH"] = os.pathsep.join([os.path.dirname(sys.executable), env.get("PATH", "")])
    server = LanguageServer([sys.executable, "-m", "pylsp"], cwd=workspace, env=env)
    try:
        result = server.request("initialize", {
            "processId": os.getpid(),
            "rootUri": workspace.as_uri(),
            "rootPath": str(workspace),
            "workspaceFolders": [{"uri": workspace.as_uri(), "name": "workspace"}],
            "capabilities": {"textDocument": {"publishDiagnostics": {}}},
            "initializationOptions": PYLSP_SETTINGS,
        })
        assert "capabilities" in result
        server.notify("initialized", {})
        server.notify("workspace/didChangeConfiguration", {"settings": PYLSP_SETTINGS})
        server.notify("textDocument/didOpen", {"textDocument": {
            "uri": document.as_uri(), "languageId": "python", "version": 1, "text": text}})

        def has_tgl_diagnostics(message):
            return (message.get("method") == "textDocument/publishDiagnostics"
                    and message["params"]["uri"] == document.as_uri()
                    and any(str(d.get("code", "")).startswith("TGL")
                            for d in message["params"]["diagnostics"]))

        message = server.wait_for(has_tgl_diagnostics, LSP_TIMEOUT, "TGL diagnostics")
        found = {(d["range"]["start"]["line"], d["range"]["start"]["character"], d["code"])
                 for d in message["params"]["diagnostics"] if str(d["code"]).startswith("TGL")}
        assert found == expected, message
        for diagnostic in message["params"]["diagnostics"]:
            assert diagnostic["source"] == "flake8"
            assert diagnostic["message"].startswith(f"{diagnostic['code']} ")
    finally:
        server.close()
