"""torchgradlint: a static linter for PyTorch's quiet mistakes.

The linter never imports torch. ``torchgradlint.runtime`` (the runtime monitor) does, and is
imported only when used.
"""

__version__ = "0.1.0"
