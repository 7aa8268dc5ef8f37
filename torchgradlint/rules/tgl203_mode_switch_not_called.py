"""TGL203: ``model.eval`` or ``model.train`` as a statement, without the call."""

import ast

from ..findings import Finding, Fix, RuleInfo, source_text, span

RULE = RuleInfo(
    "TGL203", "mode-switch-not-called",
    "`model.eval` / `model.train` referenced without being called",
    fix_safety="safe",
    fix_summary="add `()`",
)


def check(analysis):
    for statement, _function in analysis.expression_statements():
        value = statement.value
        if isinstance(value, ast.Attribute) and value.attr in ("eval", "train"):
            written = source_text(value)
            yield Finding(RULE.code, statement.lineno, statement.col_offset,
                          f"`{written}` is not called, so the mode does not change: write "
                          f"`{written}()`", Fix("call", span(value)))
