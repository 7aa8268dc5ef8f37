"""Hostile trees and caches: what the linter reads *beside* the linted file.

FIFOs and links to ``/dev/zero`` named ``*.py`` anywhere in the project, byte-identical files in
copied folders, helpers edited during a lint, damaged, hand-edited or shipped cache entries,
killed parents of worker processes. Each test reproduces one item of issue 18 on real files
and real processes; every call in this process runs under a CPU-time limit, every subprocess
under a wall-clock timeout, so a hang is a failure, not a stuck job.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from torchgradlint.cache import SummaryCache, cache_base, project_cache_dir, project_folder
from torchgradlint.engine import lint_file
from torchgradlint.project import ProjectIndex

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cpu_limit import time_limit  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
LIMIT = 20.0
POSIX = hasattr(os, "mkfifo")


@pytest.fixture
def cache(tmp_path, monkeypatch):
    folder = tmp_path / "user-cache"
    monkeypatch.setenv("TORCHGRADLINT_CACHE_DIR", str(folder))
    monkeypatch.delenv("TORCHGRADLINT_NO_CACHE", raising=False)
    ProjectIndex._instances.clear()
    SummaryCache._opened.clear()
    yield folder
    ProjectIndex._instances.clear()
    SummaryCache._opened.clear()


def new_run():
    """What a new process would see: only the disk cache survives."""
    ProjectIndex._instances.clear()
    SummaryCache._opened.clear()


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


def codes(path: Path):
    with time_limit(LIMIT):
        return sorted((f.line, f.code) for f in lint_file(str(path)))


def env_for(tmp_path: Path) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO)] + [p for p in [env.get("PYTHONPATH")] if p])
    env["TORCHGRADLINT_CACHE_DIR"] = str(tmp_path / "cli-cache")
    env.pop("TORCHGRADLINT_NO_CACHE", None)
    return env


def run_cli(tmp_path: Path, *args: str, timeout: float = 120, cwd=None):
    return subprocess.run([sys.executable, "-m", "torchgradlint", *args], cwd=str(cwd or tmp_path),
                          capture_output=True, text=True, env=env_for(tmp_path), timeout=timeout)


# An evaluation helper whose callers decide its finding, and a caller without no_grad.
ENGINE = '''
import torch

def evaluate(model, batches):
    model.eval()
    return [model(x).argmax(1) for x in batches]
'''
CALLER = '''
import torch
from engine import evaluate

def main(model, batches):
    return evaluate(model, batches)
'''
UNGUARDED = [(6, "TGL101")]


def project(tmp_path: Path) -> Path:
    root = tmp_path / "proj"
    write(root, "engine.py", ENGINE)
    write(root, "train.py", CALLER)
    return root


# --------------------------------------------------------------------------- 1, 2: bounded reads


@pytest.mark.skipif(not POSIX, reason="FIFOs")
@pytest.mark.parametrize("where", ["x.py", "excluded/x.py", "pkg/x.py"])
def test_a_fifo_in_the_project_does_not_hang_the_lint(tmp_path, cache, where):
    root = project(tmp_path)
    fifo = root / where
    fifo.parent.mkdir(parents=True, exist_ok=True)
    os.mkfifo(fifo)
    # The FIFO also "imports" nothing and is named by an import: `import x`.
    write(root, "uses_x.py", "import torch\nimport x\nx.evaluate(None, [])\n")
    assert codes(root / "engine.py") == UNGUARDED
    result = run_cli(tmp_path, "check", "--format", "json", "train.py", "engine.py", cwd=root,
                     timeout=60)
    assert result.returncode == 1, result.stderr
    assert [(r["line"], r["code"]) for r in json.loads(result.stdout)] == UNGUARDED


@pytest.mark.skipif(not POSIX, reason="FIFOs")
def test_check_of_a_folder_with_a_fifo_names_it_and_goes_on(tmp_path, cache):
    root = project(tmp_path)
    os.mkfifo(root / "pipe.py")
    result = run_cli(tmp_path, "check", ".", cwd=root, timeout=60)
    assert result.returncode == 1
    assert "pipe.py: cannot analyse: not a regular file" in result.stderr
    assert "Traceback" not in result.stderr
    assert "engine.py:6:" in result.stdout


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="needs /dev/zero")
def test_a_link_to_dev_zero_is_not_read(tmp_path, cache):
    root = project(tmp_path)
    os.symlink("/dev/zero", root / "zero.py")
    write(root, "uses_zero.py", "import torch\nfrom zero import evaluate\nevaluate(None, [])\n")
    assert codes(root / "engine.py") == UNGUARDED
    result = run_cli(tmp_path, "check", ".", cwd=root, timeout=60)
    assert result.returncode == 1
    assert "zero.py: cannot analyse: not a regular file" in result.stderr
    assert "Traceback" not in result.stderr and "MemoryError" not in result.stderr


def test_a_file_above_the_size_limit_is_named_not_read(tmp_path, cache):
    root = project(tmp_path)
    big = root / "generated.py"
    big.write_text("import torch\n" + "x = 1\n" * 400_000)  # 2.4 MB
    env = env_for(tmp_path)
    env["TORCHGRADLINT_MAX_FILE_SIZE"] = "1M"
    result = subprocess.run([sys.executable, "-m", "torchgradlint", "check", "."], cwd=str(root),
                            capture_output=True, text=True, env=env, timeout=120)
    assert "generated.py: cannot analyse: too big (2.3 MiB; the limit is 1.0 MiB" in result.stderr
    assert "engine.py:6:" in result.stdout
    env.pop("TORCHGRADLINT_MAX_FILE_SIZE")
    result = subprocess.run([sys.executable, "-m", "torchgradlint", "check", "generated.py"],
                            cwd=str(root), capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0 and not result.stderr


# --------------------------------------------------------------------------- 3: path in the key


def test_identical_files_in_copied_folders_keep_their_own_imports(tmp_path, cache):
    """``a/train.py`` and ``b/train.py`` are byte-identical (``from .utils import evaluate``);
    only ``b/utils.py`` runs its model under no_grad. Each train.py's summary must point into
    its own package, whatever the order they are summarized in."""
    unguarded = ENGINE
    guarded = ENGINE.replace("    model.eval()\n", "    model.eval()\n    torch.set_grad_enabled(False)\n")
    train = '''
        import torch
        from .utils import evaluate

        def main(model, batches):
            return evaluate(model, batches)
        '''
    for package, utils in (("a", unguarded), ("b", guarded)):
        write(tmp_path, f"{package}/__init__.py", "")
        write(tmp_path, f"{package}/utils.py", utils)
        write(tmp_path, f"{package}/train.py", train)
    index = ProjectIndex.for_file(str(tmp_path / "a" / "train.py"))
    for first, second in (("a", "b"), ("b", "a")):
        new_run()
        index = ProjectIndex.for_file(str(tmp_path / first / "train.py"))
        for package in (first, second):
            summary = index.summary(str(tmp_path / package / "train.py"))
            assert {call["target"].split("/")[0] for call in summary["calls"]} == {package}
    new_run()
    assert codes(tmp_path / "a" / "utils.py") == UNGUARDED
    assert codes(tmp_path / "b" / "utils.py") == []


# --------------------------------------------------------------------------- 4: stale digests


def test_a_helper_saved_while_its_caller_is_summarized_does_not_stick(tmp_path, cache):
    """The digests an entry depends on are those of the bytes the summary was computed from:
    an edit that lands between reading a helper and writing the entry invalidates it."""
    write(tmp_path, "helpers.py", '''
        import torch

        def finish(model):
            model.eval()
        ''')
    loops = write(tmp_path, "loops.py", '''
        import torch.nn.functional as F
        from helpers import finish

        def fit(model, batches, optimizer):
            model.train()
            for x, y in batches:
                F.cross_entropy(model(x), y).backward()
                optimizer.step()
                finish(model)
        ''')
    caller = write(tmp_path, "main.py", '''
        import torch
        from loops import fit

        def run(model, batches, optimizer):
            fit(model, batches, optimizer)
        ''')
    index = ProjectIndex.for_file(str(caller))
    original_compute = index._compute
    edited = []

    def compute_then_edit(path, data, linked=True):
        result = original_compute(path, data, linked)
        if path.endswith("loops.py") and not edited:  # the user saves the helper meanwhile
            write(tmp_path, "helpers.py", "import torch\n\ndef finish(model):\n    model.train()\n")
            edited.append(True)
        return result

    index._compute = compute_then_edit
    stale = index.summary(str(loops))
    assert stale["functions"]["fit"]["trains"]
    assert edited
    new_run()
    fresh = ProjectIndex.for_file(str(caller)).summary(str(loops))
    assert fresh["functions"]["fit"]["effects"] != stale["functions"]["fit"]["effects"]
    assert codes(loops) == []  # finish() now restores training mode: nothing in eval mode


# --------------------------------------------------------------------------- 5, 6: entries


def entry_files(cache_folder: Path):
    return sorted(p for p in cache_folder.rglob("*.json"))


def signed(cache_folder: Path, path: Path, mutate) -> None:
    """Rewrite a cache entry with ``mutate`` applied to its JSON and signed with this user's
    key, as if the linter had written it (the schema check must still refuse it)."""
    import hmac

    key = (cache_folder / "key").read_bytes()
    mac, _, body = path.read_bytes().partition(b"\n")
    entry = json.loads(body)
    mutate(entry)
    body = json.dumps(entry).encode() if not isinstance(entry, bytes) else entry
    path.write_bytes(hmac.new(key, body, hashlib.sha256).hexdigest().encode() + b"\n" + body)


def first_function(entry) -> dict:
    return next(iter(entry["summary"]["functions"].values()))


SHAPES = {
    "missing key": lambda e: first_function(e).pop("trains"),
    "number for a list": lambda e: e["summary"].__setitem__("calls", 7),
    "string for params": lambda e: first_function(e).__setitem__("params", "model"),
    "list in a mode": lambda e: first_function(e)["effects"].__setitem__("model", [[["eval"], []]]),
    "call without a target": lambda e: [call.pop("target") for call in e["summary"]["calls"]],
    "dependency not a digest": lambda e: e["depends_on"].__setitem__("engine.py", 5),
    "summary is null": lambda e: e.__setitem__("summary", None),
}


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_entries_of_the_wrong_shape_are_cache_misses(tmp_path, cache, shape):
    root = project(tmp_path)
    assert codes(root / "engine.py") == UNGUARDED  # fills the cache with train.py's summary
    entries = entry_files(cache)
    assert entries
    for entry in entries:
        signed(cache, entry, SHAPES[shape])
    new_run()
    errors = []
    with time_limit(LIMIT):
        found = lint_file(str(root / "engine.py"), on_error=lambda *a: errors.append(a))
        found_caller = lint_file(str(root / "train.py"), on_error=lambda *a: errors.append(a))
    assert not errors
    assert sorted((f.line, f.code) for f in found) == UNGUARDED
    assert found_caller == []


def test_a_deeply_nested_entry_is_a_miss_not_an_error(tmp_path, cache):
    root = project(tmp_path)
    assert codes(root / "engine.py") == UNGUARDED
    for entry in entry_files(cache):
        signed(cache, entry, lambda e: e.__setitem__("summary", "X"))
        key = (cache / "key").read_bytes()
        import hmac
        body = b"[" * 100_000 + b"]" * 100_000
        entry.write_bytes(hmac.new(key, body, hashlib.sha256).hexdigest().encode() + b"\n" + body)
    new_run()
    assert codes(root / "engine.py") == UNGUARDED
    result = run_cli(tmp_path, "check", "engine.py", cwd=root)
    assert result.returncode == 1 and "internal error" not in result.stderr


def test_an_entry_edited_by_hand_is_not_trusted(tmp_path, cache):
    """The TGL101 of engine.py depends on train.py calling evaluate() with autograd on. An
    edited ``grad`` in the cached summary of train.py (unsigned by this user's key) must not
    hide it."""
    root = project(tmp_path)
    assert codes(root / "engine.py") == UNGUARDED
    edited = 0
    for entry in entry_files(cache):
        mac, _, body = entry.read_bytes().partition(b"\n")
        if b'"grad":["on"]' in body:
            entry.write_bytes(mac + b"\n" + body.replace(b'"grad":["on"]', b'"grad":["off"]'))
            edited += 1
    assert edited
    new_run()
    assert codes(root / "engine.py") == UNGUARDED


def test_a_cache_shipped_in_the_repository_is_not_read(tmp_path, monkeypatch):
    """The default cache is under the user's cache folder, never in the tree: a repository's
    ``.torchgradlint_cache/`` (the old place) is ignored and nothing is written into the tree."""
    monkeypatch.delenv("TORCHGRADLINT_CACHE_DIR", raising=False)
    monkeypatch.delenv("TORCHGRADLINT_NO_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    new_run()
    root = project(tmp_path)
    (root / ".git").mkdir()
    shipped = root / ".torchgradlint_cache" / "ab"
    shipped.mkdir(parents=True)
    (shipped / "abcd.json").write_text(json.dumps({"depends_on": {"/etc/passwd": "0" * 64},
                                                   "summary": {}}))
    before = sorted(p.relative_to(root) for p in root.rglob("*"))
    assert codes(root / "engine.py") == UNGUARDED
    assert sorted(p.relative_to(root) for p in root.rglob("*")) == before
    assert cache_base() == str(tmp_path / "xdg" / "torchgradlint")
    folder = Path(project_cache_dir(project_folder(str(root))))
    assert folder.parent.parent == tmp_path / "xdg" / "torchgradlint"
    assert (folder / "CACHEDIR.TAG").read_text().startswith("Signature: 8a477f597d28d172789f06886806bc55")
    assert entry_files(folder)
    new_run()


@pytest.mark.parametrize("dependency", ["/etc/passwd", "../outside.py", "a/../../outside.py",
                                        "dev/zero.py"])
def test_dependencies_outside_the_project_are_never_opened(tmp_path, cache, dependency):
    """Even an entry signed with the user's key (here: forged with it) cannot make the linter
    open a path outside the project, or anything but a bounded regular file."""
    root = project(tmp_path)
    (tmp_path / "outside.py").write_text("import torch\n")
    if dependency.startswith("dev/"):
        (root / "dev").mkdir()
        os.symlink("/dev/zero", root / "dev" / "zero.py")
    assert codes(root / "engine.py") == UNGUARDED
    for entry in entry_files(cache):
        signed(cache, entry, lambda e: e["depends_on"].__setitem__(dependency, "0" * 64))
    new_run()
    opened = opened_python_files(root / "engine.py") | opened_files_named(root / "engine.py", "passwd")
    # (a link to /dev/zero inside the project is opened without waiting and refused unread:
    # the CPU limit of ``codes`` holds)
    assert not [path for path in opened if path.endswith(("passwd", "outside.py"))]


def test_a_cache_folder_writable_by_others_is_not_used(tmp_path, monkeypatch):
    folder = tmp_path / "shared-cache"
    folder.mkdir()
    folder.chmod(0o777)
    monkeypatch.setenv("TORCHGRADLINT_CACHE_DIR", str(folder))
    new_run()
    root = project(tmp_path)
    assert codes(root / "engine.py") == UNGUARDED
    assert list(folder.iterdir()) == []
    new_run()


def test_stale_entries_are_pruned_and_clean_removes_the_project_cache(tmp_path, cache):
    from torchgradlint.cache import prune

    root = project(tmp_path)
    assert codes(root / "engine.py") == UNGUARDED
    folder = Path(project_cache_dir(project_folder(str(root))))
    entries = entry_files(folder)
    assert entries
    old = time.time() - 40 * 86400
    os.utime(entries[0], (old, old))
    assert prune(str(folder)) == 1
    assert entries[0].exists() is False
    result = run_cli(tmp_path, "clean", str(root))
    assert result.returncode == 0, result.stderr
    cli_folder = Path(project_cache_dir(project_folder(str(root)), str(tmp_path / "cli-cache")))
    assert not cli_folder.exists()
    codes_before = run_cli(tmp_path, "check", str(root))
    assert codes_before.returncode == 1 and cli_folder.exists()
    result = run_cli(tmp_path, "clean", str(root))
    assert result.returncode == 0 and str(cli_folder) in result.stdout
    assert not cli_folder.exists()


def test_one_cache_folder_per_repository(tmp_path, cache):
    """Example folders without packages each have their own analysis root, but share the
    repository's cache folder (pytorch/examples had twelve)."""
    repo = tmp_path / "examples"
    (repo / ".git").mkdir(parents=True)
    for name in ("mnist", "dcgan", "word_language_model"):
        write(repo / name, "engine.py", ENGINE)
        write(repo / name, "main.py", CALLER)
        assert codes(repo / name / "engine.py") == UNGUARDED
    folders = [p for p in (cache / "projects").iterdir()]
    assert len(folders) == 1 and folders[0].name.startswith("examples-")


# --------------------------------------------------------------------------- 8: files read


def opened_files_named(path: Path, suffix: str):
    new_run()
    return opened_python_files(path, suffix=suffix)


def opened_python_files(path: Path, config=None, suffix=".py"):
    """The files a lint of ``path`` opens (audit events of ``open()`` and ``os.open``)."""
    opened = set()
    recording = [True]

    def audit(event, args):
        if recording[0] and event == "open" and args and isinstance(args[0], str) and \
                args[0].endswith(suffix):
            opened.add(args[0])

    sys.addaudithook(audit)
    try:
        with time_limit(LIMIT):
            lint_file(str(path), config)
    finally:
        recording[0] = False
    return opened


def test_callers_are_not_looked_for_in_nested_repositories_or_excluded_folders(tmp_path, cache):
    from torchgradlint.config import Config

    root = project(tmp_path)
    for number in range(30):
        write(root, f"clone{number % 3}/m{number}.py", "import torch\nfrom engine import evaluate\n")
        write(root, f"vendored/m{number}.py", "import torch\nfrom engine import evaluate\n")
        write(root, f"env/lib/m{number}.py", "import torch\nfrom engine import evaluate\n")
    for number in range(3):
        (root / f"clone{number}" / ".git").mkdir()
    (root / "env" / "pyvenv.cfg").write_text("home = /usr\n")
    opened = opened_python_files(root / "engine.py", Config(exclude=("vendored",)))
    assert {Path(p).name for p in opened} == {"engine.py", "train.py"}


# --------------------------------------------------------------------------- 9: one answer


@pytest.mark.parametrize("data", [
    b"import torch\n# \xe9\ndef evaluate(model, x):\n    model.eval()\n    return model(x)\n",
    b"# coding: ascii\nimport torch\nname = '\xc3\xa9'\ndef evaluate(model, x):\n"
    b"    model.eval()\n    return model(x)\n",
], ids=["invalid-utf8", "wrong-cookie"])
def test_flake8_and_check_agree_on_undecodable_files(tmp_path, cache, data):
    path = tmp_path / "bad.py"
    path.write_bytes(data)
    check = run_cli(tmp_path, "check", "bad.py")
    assert "cannot analyse" in check.stderr
    reported = check.stdout.splitlines()
    assert reported and all(" TGL001 " in line for line in reported), check.stdout  # not analysed
    flake8 = subprocess.run([sys.executable, "-m", "flake8", "--isolated", "--select=TGL", "bad.py"],
                            cwd=str(tmp_path), capture_output=True, text=True,
                            env=env_for(tmp_path), timeout=120)
    assert "TGL" not in flake8.stdout, flake8.stdout
    # The same program, decodable: both report it.
    good = tmp_path / "good.py"
    good.write_bytes(data.replace(b"\xe9", b"e").replace(b"\xc3\xa9", b"e"))
    flake8 = subprocess.run([sys.executable, "-m", "flake8", "--isolated", "--select=TGL", "good.py"],
                            cwd=str(tmp_path), capture_output=True, text=True,
                            env=env_for(tmp_path), timeout=120)
    assert "TGL101" in flake8.stdout


# --------------------------------------------------------------------------- 7: signals


def busy_tree(folder: Path, files: int = 40, functions: int = 1500) -> Path:
    """Enough work for two workers to be busy for several seconds."""
    body = "import torch\n\n" + "".join(
        f"def evaluate_{number}(model, x):\n    model.eval()\n    return model(x)\n\n"
        for number in range(functions))
    for number in range(files):
        write(folder, f"m{number:03}.py", body)
    return folder


def children_of(pid: int):
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as handle:
                    fields = handle.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid and fields[0] != "Z":
                found.append(int(entry))
    return found


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def start_check(tmp_path: Path, command: str = "check"):
    tree = busy_tree(tmp_path / "tree")
    # A test run started in the background of a non-interactive shell (``.ci/run &``) ignores
    # SIGINT, and its children inherit that (Python then installs no Ctrl-C handler): the
    # linter must meet Ctrl-C as a terminal user's run does.
    process = subprocess.Popen([sys.executable, "-m", "torchgradlint", command, "-j2", str(tree)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               env=env_for(tmp_path), start_new_session=True,
                               preexec_fn=_default_sigint)
    deadline = time.monotonic() + 60
    while len(children_of(process.pid)) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    workers = children_of(process.pid)
    assert len(workers) >= 2, "the workers did not start"
    time.sleep(0.5)  # busy with their first files
    return process, workers


def wait_gone(pids, seconds: float) -> float:
    start = time.monotonic()
    while any(alive(pid) for pid in pids):
        assert time.monotonic() - start < seconds, f"still running: {[p for p in pids if alive(p)]}"
        time.sleep(0.02)
    return time.monotonic() - start


LINUX = sys.platform.startswith("linux")


@pytest.mark.slow
@pytest.mark.skipif(not LINUX, reason="reads /proc")
@pytest.mark.parametrize("how", ["SIGINT to the group", "SIGTERM", "SIGKILL"])
def test_workers_stop_with_their_parent(tmp_path, how):
    process, workers = start_check(tmp_path)
    start = time.monotonic()
    if how == "SIGINT to the group":
        os.killpg(process.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
    else:
        os.kill(process.pid, getattr(signal, how))
    try:
        process.wait(timeout=10)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    parent_exit = time.monotonic() - start
    workers_gone = wait_gone(workers, 5.0)
    assert parent_exit < 3.0
    expected = {"SIGINT to the group": 130, "SIGTERM": 143, "SIGKILL": -signal.SIGKILL}[how]
    assert process.returncode == expected
    if how != "SIGKILL":
        assert b"Traceback" not in process.stderr.read()
    # the workers held the pipe: it closes once they are gone
    assert process.stdout.read() is not None
    print(f"{how}: parent exited in {parent_exit:.2f} s, workers gone "
          f"{workers_gone:.2f} s later")


# --------------------------------------------------------------------------- 9: outputs, links


@pytest.mark.skipif(not POSIX, reason="newlines in file names")
@pytest.mark.parametrize("form", ["github", "text"])
def test_a_newline_in_a_file_name_cannot_forge_an_annotation(tmp_path, cache, form):
    folder = tmp_path / "tree"
    folder.mkdir()
    evil = "x\n::error file=README.md,line=1::forged\n.py"
    (folder / evil).write_text(ENGINE)
    (folder / "broken\n::error ::forged too\n.py").write_bytes(b"import torch\n(\n")
    result = run_cli(tmp_path, "check", "--format", form, "tree")
    assert result.returncode == 1
    for stream in (result.stdout, result.stderr):
        assert not [line for line in stream.splitlines() if line.startswith("::error")], stream
    assert "forged" in result.stdout and "cannot analyse" in result.stderr


def run_into_closed_pipe(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before the first byte (``| head -0``)
    try:
        return subprocess.run([sys.executable, "-m", "torchgradlint", *args], cwd=str(tmp_path),
                              stdout=write_end, stderr=subprocess.PIPE, text=True,
                              env=env_for(tmp_path), timeout=120)
    finally:
        os.close(write_end)


def test_a_broken_pipe_keeps_the_exit_status(tmp_path, cache):
    clean = write(tmp_path, "clean.py", "import torch\n\nx = torch.ones(2)\n")
    result = run_into_closed_pipe(tmp_path, "check", "--format", "json", str(clean))
    assert (result.returncode, result.stderr) == (0, "")
    root = project(tmp_path)
    result = run_into_closed_pipe(tmp_path, "check", "--format", "json", str(root))
    assert (result.returncode, result.stderr) == (1, "")


@pytest.mark.skipif(not hasattr(os, "link"), reason="hard links")
def test_fix_keeps_hard_links(tmp_path, cache):
    original = write(tmp_path, "evaluate.py", ENGINE)
    linked = tmp_path / "linked.py"
    os.link(original, linked)
    result = run_cli(tmp_path, "fix", "--unsafe-fixes", "evaluate.py")
    assert result.returncode == 0, result.stderr
    assert original.read_text() != textwrap.dedent(ENGINE)
    assert linked.read_text() == original.read_text()
    assert os.stat(original).st_ino == os.stat(linked).st_ino
    assert os.stat(original).st_nlink == 2
    assert sorted(p.name for p in tmp_path.iterdir() if p.suffix == ".py") == ["evaluate.py", "linked.py"]


@pytest.mark.skipif(not POSIX, reason="FIFOs")
def test_fix_of_a_fifo_says_so(tmp_path, cache):
    os.mkfifo(tmp_path / "pipe.py")
    result = run_cli(tmp_path, "fix", "pipe.py", timeout=60)
    assert "pipe.py: cannot fix: not a regular file" in result.stderr


# --------------------------------------------------------------------------- 8: deep, long


def test_a_long_elif_chain_is_analysed(tmp_path, cache):
    """Python parses 2,500 ``elif`` branches; the analysis stopped at 486 (recursion limit)."""
    branches = 2000
    lines = ["import torch", "", "def evaluate(model, x, k):", "    model.eval()",
             "    if k == 0:", "        y = model(x)"]
    for number in range(1, branches):
        lines += [f"    elif k == {number}:", f"        y = model(x) + {number}"]
    path = write(tmp_path, "dispatch.py", "\n".join(lines + ["    return y", ""]))
    found = codes(path)
    assert len(found) == branches and {code for _, code in found} == {"TGL101"}
    assert found[-1][0] == 6 + 2 * (branches - 1)
