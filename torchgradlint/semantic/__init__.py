"""The semantic model: one analysis of a file that every rule queries."""

from .model import SemanticModel

__all__ = ["SemanticModel"]
