"""Settings shared by the flake8 plugin and the standalone CLI.

The same names are read from flake8's configuration (``tgl-no-grad-decorators = …``) and from
``[tool.torchgradlint]`` in ``pyproject.toml`` (``no-grad-decorators = [...]``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import FrozenSet, Tuple


@dataclass(frozen=True)
class Config:
    # Dotted or bare names of project helpers that disable autograd, used as decorators or as
    # ``with`` items (``smart_inference_mode``, ``utils.no_grad_eval``).
    no_grad_decorators: FrozenSet[str] = frozenset()
    # Dotted or bare names of callables that return an ``nn.Module`` (``build_model``,
    # ``mmdet.apis.init_detector``).
    model_constructors: FrozenSet[str] = frozenset()
    # Codes or prefixes; the CLI applies them (flake8 applies its own --select/--ignore).
    # Read the other modules of the project (imports, callers) through the project index.
    project: bool = True
    # Skip work that cannot change a finding: the text screen, importers that never name a
    # called function, re-analysing functions whose callees did not change. Off only to check
    # that claim (tests/test_shortcuts.py).
    shortcuts: bool = True
    select: Tuple[str, ...] = ()
    ignore: Tuple[str, ...] = ()
    # Globs (``str``, relative to the current folder) or ``discovery.ExcludePattern``s: the
    # project view does not look for callers in what they match.
    exclude: Tuple[object, ...] = ()

    def wants(self, code: str) -> bool:
        if self.select and not any(code.startswith(prefix) for prefix in self.select):
            return False
        return not any(code.startswith(prefix) for prefix in self.ignore)


DEFAULT_CONFIG = Config()
