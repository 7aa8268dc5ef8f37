"""Lint one file: screen, parse once, build the semantic model, run every rule."""

from __future__ import annotations

from typing import List, Optional

from .config import DEFAULT_CONFIG, Config
from .findings import Finding


def lint_source(source: str, filename: str = "<string>", config: Optional[Config] = None) -> List[Finding]:
    """Findings for one module's source text, sorted by line and column. Never raises."""
    raise NotImplementedError  # being written


def lint_file(path: str, config: Optional[Config] = None) -> List[Finding]:
    raise NotImplementedError  # being written
