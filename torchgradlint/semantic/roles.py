"""Roles from names, for when optimizers cannot be resolved: ``netD``/``critic`` are
discriminators, ``netG``/``generator`` generators, ``optimizerD`` steps a discriminator."""

from typing import Optional

from .torch_api import words

DISCRIMINATOR_WORDS = {"d", "disc", "discriminator", "netd", "critic", "dis"}
GENERATOR_WORDS = {"g", "gen", "generator", "netg"}
OPTIMIZER_WORDS = {"opt", "optim", "optimizer", "optimiser"}


def role(name: Optional[str]) -> Optional[str]:
    if not name:
        return None
    parts = set(words(name.split(".")[-1])) - OPTIMIZER_WORDS
    if parts & DISCRIMINATOR_WORDS and not parts & GENERATOR_WORDS:
        return "D"
    if parts & GENERATOR_WORDS and not parts & DISCRIMINATOR_WORDS:
        return "G"
    return None
