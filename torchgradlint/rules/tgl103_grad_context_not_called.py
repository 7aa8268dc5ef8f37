"""TGL103: ``with torch.no_grad:`` -- the context manager class used without calling it."""

import ast

from ..findings import Finding, Fix, RuleInfo, source_text, span
from ..semantic import torch_api as api

RULE = RuleInfo(
    "TGL103", "grad-context-not-called",
    "`with torch.no_grad:`: the context manager used without being called",
    fix_safety="safe",
    fix_summary="add `()`",
)


def check(analysis):
    for item, _function in analysis.with_items():
        if not isinstance(item, (ast.Name, ast.Attribute)):
            continue
        qualified = analysis.resolve(item)
        if qualified in api.GRAD_CONTEXTS:
            written = source_text(item)
            yield Finding(RULE.code, item.lineno, item.col_offset,
                          f"`{written}` is not called: write `with {written}():` (a TypeError "
                          f"at run time)", Fix("call", span(item)))
