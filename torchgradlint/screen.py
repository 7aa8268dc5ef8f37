"""The text screen: the words every finding needs.

A module that mentions none of them -- not torch, no library built on it, no backward pass, no
mode switch -- cannot draw a finding, so neither the linted file nor a summarized neighbour is
parsed or analysed for it. A speed path only: ``tests/test_shortcuts.py`` checks that switching
it off (``Config(shortcuts=False)``) changes no finding.
"""

from __future__ import annotations

import re

_SCREEN = re.compile(r"torch|lightning|transformers|diffusers|timm|\bnn\b|no_grad|backward|\.eval\b|\.train\b")


def may_contain_findings(source: str) -> bool:
    return _SCREEN.search(source) is not None
