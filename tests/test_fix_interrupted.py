"""``torchgradlint fix`` killed at any moment leaves each file either as it was or fully fixed:
never half written (the new text goes to a temporary file that replaces the old one atomically)."""

import subprocess
import sys
import time

BLOCK = "with torch.no_grad:\n    y = x + {i}\n"


def test_fix_killed_midway_leaves_old_or_new_file(tmp_path):
    original = "import torch\n\nx = torch.ones(2)\n" + "".join(BLOCK.format(i=i) for i in range(3000))
    reference = tmp_path / "reference.py"
    reference.write_text(original)
    subprocess.run([sys.executable, "-m", "torchgradlint", "fix", "--isolated", str(reference)],
                   capture_output=True, timeout=600)
    fixed = reference.read_text()
    assert fixed != original and "with torch.no_grad():" in fixed

    for delay in (0.05, 0.2, 0.4, 0.7, 1.0, 1.5, 2.5, 4.0):
        target = tmp_path / "train.py"
        target.write_text(original)
        process = subprocess.Popen([sys.executable, "-m", "torchgradlint", "fix", "--isolated",
                                    str(target)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(delay)
        process.kill()
        process.wait()
        content = target.read_text()
        assert content in (original, fixed), f"half-written file after {delay} s"
