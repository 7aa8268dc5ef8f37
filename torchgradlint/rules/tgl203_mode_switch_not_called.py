"""TGL203: ``model.eval`` or ``model.train`` as a statement, without the call."""

import ast

from ..findings import Finding, Fix, span, source_text
from ..rules import RULES_BY_CODE

INFO = RULES_BY_CODE["TGL203"]


def check(model):
    for statement, _function in model.structure.expression_statements:
        value = statement.value
        if isinstance(value, ast.Attribute) and value.attr in ("eval", "train"):
            written = source_text(value)
            yield Finding(INFO.code, statement.lineno, statement.col_offset,
                          f"`{written}` is referenced but not called, so the mode does not "
                          f"change: write `{written}()`", Fix("call", span(value)))
