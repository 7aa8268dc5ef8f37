"""TGL302: a tensor with autograd history accumulated into something that outlives the step.

``total += loss`` (``total = total + loss * n``, ``history.append(loss)``,
``all = torch.cat([all, loss])``) into a name defined before the loop, or into ``self.total``,
keeps every iteration's graph alive. When the value comes in through a parameter (an
``AverageMeter.update(val)``), the finding goes to the call that passes the tensor. Silent where
autograd is off, and where the accumulated value feeds a backward pass (accumulated on purpose).
"""

import ast

from ..findings import Finding, Fix, RuleInfo, line_ref, source_text, span
from ..semantic.names import dotted
from ..semantic import torch_api as api
from ..semantic.torch_api import words

RULE = RuleInfo(
    "TGL302", "graph-kept-alive-by-accumulation",
    "a tensor with autograd history accumulated across iterations (`total += loss`)",
    fix_safety="safe",
    fix_summary="`.detach()`",
)
CONCATENATING = {"torch.cat", "torch.stack", "torch.hstack", "torch.vstack", "torch.concat",
                 "torch.concatenate"}


def check(analysis):
    if not analysis.has_runtime_questions():
        return  # no forward or backward pass of the file's own to judge
    reported = set()
    for function in analysis.functions:
        for index, statement in enumerate(function.statements):
            accumulated = _accumulation(analysis, statement)
            if accumulated is None:
                continue
            key, value = accumulated
            if not _outlives_the_step(analysis, function, index, key):
                continue
            if not analysis.grad_may_be_on_statement(statement):
                continue
            if analysis.values.reaches_training(analysis.values.definition(function, index, key)):
                continue  # accumulated on purpose, for a backward after the loop
            start = analysis.values.sources(function, index, value)
            local = _graph_forwards(analysis, analysis.values.upstream_within(start, function))
            written = source_text(value)
            if not local and start and _each_iteration_steps(analysis, function, index) and \
                    all(analysis.values.reaches_training(node) for node in start):
                # The value is a term of this step's loss (``(value_loss * c + ...).backward()``):
                # it carries the graph, whatever computed it (a method of a model handed in).
                local = [None]
            if local:
                if not analysis.is_loss_like(function, index, value):
                    continue  # lists of outputs or features are TGL101's business
                if (statement.lineno, statement.col_offset) in reported:
                    continue
                reported.add((statement.lineno, statement.col_offset))
                yield _finding(statement.lineno, statement.col_offset, key, written, local[0], value)
                continue
            params = analysis.values.parameters_among(
                analysis.values.upstream_within(start, function), function)
            for caller in function.callers:
                for param, arg in analysis.bound_arguments(caller, function):
                    if param not in params or caller.loop is None:
                        continue
                    if not analysis.is_loss_like(caller.function, caller.index, arg):
                        continue
                    forwards = _graph_forwards(analysis, analysis.gradient_upstream(
                        caller.function, caller.index, arg))
                    if forwards and (caller.line, caller.col) not in reported:
                        reported.add((caller.line, caller.col))
                        yield _finding(caller.line, caller.col, f"{function.name}()'s `{key}`",
                                       source_text(arg), forwards[0], arg)


def _finding(line, col, key, written, forward, value):
    scalar = not isinstance(value, (ast.Tuple, ast.List, ast.Dict, ast.Set))
    fix = Fix("method", span(value), "detach") if scalar else None
    remedy = f"accumulate `{written}.item()` or `.detach()`" if scalar else \
        "store Python numbers (`.item()`) or detached tensors"
    carried = f"carries the graph of `{forward.network}`, {line_ref(forward.line)}" if forward is not None \
        else "is a term of the loss the step backpropagates: it carries the graph"
    return Finding(
        RULE.code, line, col,
        f"{key if key.endswith('`') else '`' + key + '`'} keeps every step's autograd graph: "
        f"{remedy} (`{written}` {carried})",
        fix)


def _graph_forwards(analysis, nodes):
    return [site for site in analysis.forward_sites_in(nodes)
            if analysis.grad_may_be_on(site) and not analysis.is_frozen(site)]


def _container(node):
    """The name that holds an accumulator: ``total``, ``self.total``, ``history`` for
    ``history["loss"]``."""
    while isinstance(node, ast.Subscript):
        node = node.value
    return dotted(node)


def _accumulation(analysis, statement):
    """(accumulating name, added value) for ``x += v``, ``x = x + v``, ``x.append(v)``,
    ``x = torch.cat([x, v])``, ``stats["loss"] += v``, ``history["loss"].append(v)``."""
    if isinstance(statement, ast.AugAssign) and isinstance(statement.op, (ast.Add, ast.Sub)):
        key = _container(statement.target)
        return (key, statement.value) if key else None
    if isinstance(statement, ast.Assign) and len(statement.targets) == 1:
        key = dotted(statement.targets[0])
        value = statement.value
        if not key:
            return None
        if isinstance(value, ast.BinOp) and isinstance(value.op, (ast.Add, ast.Sub)):
            if dotted(value.left) == key:
                return key, value.right
            if dotted(value.right) == key:
                return key, value.left
        if isinstance(value, ast.Call) and value.args and \
                analysis.resolve(value.func) in CONCATENATING and \
                isinstance(value.args[0], (ast.List, ast.Tuple)):
            others = [e for e in value.args[0].elts if dotted(e) != key]
            if len(others) < len(value.args[0].elts) and len(others) == 1:
                return key, others[0]
        return None
    if isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Call):
        func = statement.value.func
        if isinstance(func, ast.Attribute) and func.attr in api.LIST_APPENDING_METHODS and statement.value.args:
            key = _container(func.value)
            return (key, statement.value.args[-1]) if key else None
    return None


def _outlives_the_step(analysis, function, index, key):
    """Defined before the innermost loop around the statement (and not reset in it), or state
    of ``self`` that outlives the method call."""
    root = key.split(".")[0]
    loop = _innermost_loop(function, index)
    if loop is None:
        return root == "self" and function.cls is not None
    if not analysis.loop_trains(loop) and not _walks_data(loop):
        return False  # a loop over layers or timesteps inside one step: nothing outlives it
    if root == "self" or root in function.params:
        return True
    if key == root and _element_of_a_lasting_container(analysis, function, loop, root):
        return True
    definitions = analysis.values.definitions(function, key) or analysis.values.definitions(function, root)
    if any(loop.first_index < other < index and _assigns_fresh(analysis, function.statements[other], key)
           for other in definitions):
        return False  # reset earlier in the same iteration
    return not definitions or any(other < loop.first_index for other in definitions)


def _element_of_a_lasting_container(analysis, function, loop, name):
    """``for net, opt, history in zip(nets, optimizers, histories): history.append(loss)``: the
    loop variable is an element of a container bound before the loop, and what is appended to
    it stays there when the loop moves on."""
    node = loop.node
    if not isinstance(node, (ast.For, ast.AsyncFor)):
        return False
    iterable, target = node.iter, node.target
    if isinstance(iterable, ast.Call) and dotted(iterable.func) == "zip" and isinstance(target, ast.Tuple) \
            and len(target.elts) == len(iterable.args):
        pairs = list(zip(target.elts, iterable.args))
    elif isinstance(iterable, ast.Name):
        pairs = [(target, iterable)]
    else:
        return False
    for element, source in pairs:
        if isinstance(element, ast.Name) and element.id == name and isinstance(source, ast.Name):
            definitions = analysis.values.definitions(function, source.id)
            return bool(definitions) and all(other < loop.first_index for other in definitions)
    return False


DATA_WORDS = {"loader", "dataloader", "data", "dataset", "batches", "batch", "dl", "iterator",
              "epoch", "epochs", "steps", "samples", "episodes", "examples", "minibatches"}


def _walks_data(loop):
    """The loop goes over data (batches of a loader, epochs, episodes), one step each turn."""
    return any(set(words(name)) & DATA_WORDS for name in loop.iterable_identifiers)


def _each_iteration_steps(analysis, function, index):
    """The loop around the statement steps an optimizer each iteration (so its loss terms are
    this iteration's, not gradient accumulation's or a closure's partial losses)."""
    loop = _innermost_loop(function, index)
    return loop is not None and analysis.loop_steps_an_optimizer(loop)


def _innermost_loop(function, index):
    innermost = None
    for loop in function.loops:
        if loop.first_index < index <= loop.last_index:
            if innermost is None or loop.first_index > innermost.first_index:
                innermost = loop
    return innermost


def _assigns_fresh(analysis, statement, key):
    return isinstance(statement, (ast.Assign, ast.AnnAssign)) and \
        _accumulation(analysis, statement) is None
