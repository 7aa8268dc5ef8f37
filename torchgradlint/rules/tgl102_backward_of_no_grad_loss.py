"""TGL102: a backward pass or autograd.grad on a loss computed with autograd off."""

import ast

from ..findings import Finding, source_text
from ..rules import RULES_BY_CODE

INFO = RULES_BY_CODE["TGL102"]


def check(model):
    for site in model.sites():
        if site.method == "backward" and site.receiver is not None or (
                site.method == "backward" and isinstance(site.node.func, ast.Attribute)):
            loss = site.node.func.value
        elif site.qualified == "torch.autograd.grad" and site.node.args:
            loss = site.node.args[0]
        else:
            continue
        line = model.computed_without_graph(site, loss)
        if line is not None:
            yield Finding(
                INFO.code, site.line, site.col,
                f"`{source_text(loss)}` was computed with autograd off (line {line}), so this "
                f"backward fails or trains nothing: compute the loss with autograd enabled")
