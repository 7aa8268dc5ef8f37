"""bench/verify_corpus.py: a corpus file that no longer holds its pinned revision's content is
reported (a real git repository in a temporary folder, no network)."""

import shutil
import subprocess
import sys

import pytest

from conftest import ROOT

sys.path.insert(0, str(ROOT / "bench"))
from verify_corpus import main  # noqa: E402

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="needs git")


def git(folder, *args):
    return subprocess.run(["git", "-C", str(folder), *args], capture_output=True, text=True,
                          check=True).stdout.strip()


def test_a_changed_file_is_reported(tmp_path, capsys):
    mirror = tmp_path / "mirrors" / "owner+repo" / "repo"
    mirror.mkdir(parents=True)
    git(mirror, "init", "-q")
    (mirror / "sample.py").write_text("model.eval()\nprint(model(x))\n")
    (mirror / "train.py").write_text("loss.backward()\n")
    git(mirror, "add", ".")
    git(mirror, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "pin")
    revision = git(mirror, "rev-parse", "HEAD")
    corpus = tmp_path / "corpus" / "owner+repo"
    corpus.mkdir(parents=True)
    for name in ("sample.py", "train.py"):
        shutil.copy(mirror / name, corpus / name)
    (corpus / "notebook.ipynb.py").write_text("# made by the preparation, not in git\n")
    listing = tmp_path / "corpus.txt"
    listing.write_text(f"owner/repo {revision}  # comment\n")
    arguments = [str(tmp_path / "corpus"), "--list", str(listing), "--mirrors", str(tmp_path / "mirrors")]

    assert main(arguments) == 0
    assert "1 repositories checked, 0 problem(s)" in capsys.readouterr().out

    (corpus / "sample.py").write_text("print(model(x))\n")  # the eval() lost
    assert main(arguments) == 1
    assert capsys.readouterr().out.splitlines() == [
        "changed: owner/repo sample.py", "1 repositories checked, 1 problem(s)"]
