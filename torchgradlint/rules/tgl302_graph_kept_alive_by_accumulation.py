"""TGL302: a tensor with autograd history accumulated across loop iterations.

``total += loss`` (or ``total = total + loss * n``, ``history.append(loss)``) into a name that
outlives the iteration keeps every iteration's graph alive. Silent where autograd is off.
"""

import ast

from ..findings import Finding
from ..rules import RULES_BY_CODE
from ..semantic.names import dotted

INFO = RULES_BY_CODE["TGL302"]
APPENDING = {"append", "extend", "insert", "appendleft"}


def check(model):
    for function in model.functions:
        for loop in function.loops:
            for index in range(loop.first_index + 1, loop.last_index + 1):
                statement = function.statements[index]
                if _innermost_loop(function, index) is not loop:
                    continue
                accumulated = _accumulation(statement)
                if accumulated is None:
                    continue
                key, value = accumulated
                if not model.grad_may_be_on_statement(statement):
                    continue
                if _reset_inside(function, loop, index, key) or not _lives_outside(function, loop, key):
                    continue
                if model.dataflow.def_node(function, index, key) in model.dataflow.reaches_training:
                    continue  # accumulated on purpose, for one backward after the loop
                forwards = [site for site in model.forward_sites_in(
                    model.gradient_upstream(function, index, value))
                    if model.grad_may_be_on(site) and not model.is_frozen(site.model)]
                if not forwards:
                    continue
                written = ast.unparse(value)
                yield Finding(
                    INFO.code, statement.lineno, statement.col_offset,
                    f"`{key}` accumulates `{written}`, which carries the autograd graph of "
                    f"`{forwards[0].model}` (line {forwards[0].line}): every iteration's graph stays "
                    f"alive; accumulate `{written}.item()` (or `.detach()`)")


def _accumulation(statement):
    """(accumulating name, added value) for ``x += v``, ``x = x + v``, ``x.append(v)``."""
    if isinstance(statement, ast.AugAssign) and isinstance(statement.op, (ast.Add, ast.Sub)):
        key = dotted(statement.target)
        return (key, statement.value) if key else None
    if isinstance(statement, ast.Assign) and len(statement.targets) == 1 and \
            isinstance(statement.value, ast.BinOp) and isinstance(statement.value.op, (ast.Add, ast.Sub)):
        key = dotted(statement.targets[0])
        if key and dotted(statement.value.left) == key:
            return key, statement.value.right
        if key and dotted(statement.value.right) == key:
            return key, statement.value.left
        return None
    if isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Call):
        func = statement.value.func
        if isinstance(func, ast.Attribute) and func.attr in APPENDING and statement.value.args:
            key = dotted(func.value)
            return (key, statement.value.args[-1]) if key else None
    return None


def _innermost_loop(function, index):
    innermost = None
    for loop in function.loops:
        if loop.first_index < index <= loop.last_index:
            if innermost is None or loop.first_index > innermost.first_index:
                innermost = loop
    return innermost


def _assigns_fresh(statement, key):
    return isinstance(statement, (ast.Assign, ast.AnnAssign)) and _accumulation(statement) is None and \
        any(dotted(t) == key for t in (statement.targets if isinstance(statement, ast.Assign)
                                       else [statement.target]))


def _reset_inside(function, loop, index, key):
    """``total = 0`` earlier in the same iteration: the sum does not outlive it."""
    return any(_assigns_fresh(function.statements[i], key) for i in range(loop.first_index + 1, index))


def _lives_outside(function, loop, key):
    root = key.split(".")[0]
    if root == "self" or root in function.params:
        return True
    return any(_assigns_fresh(function.statements[i], key) or
               isinstance(function.statements[i], (ast.AugAssign,))
               for i in range(0, loop.first_index)) or root not in function.local_names
