"""Where TGL301's ``.detach()`` goes, and when that is safe.

Detaching the discriminator's input at ``netD(fake)`` keeps every gradient the step uses only
when the backward of that loss is the sole user of the forward's graph. Two shapes break it:

- the forward's output also feeds another backward (one ``D_gen = netD(fake)`` for the
  generator's loss and, later, the discriminator's): a detach at the call would cut the
  generator's own loss off. The repair is a second forward on the detached input, bound to the
  same name right before the discriminator's loss reads it: safe when the model holds neither
  Dropout nor BatchNorm (the second forward computes the same values), no step changed its
  parameters in between, and nothing after that point that reads the name feeds another backward;
- the loss differentiates with respect to that input (a WGAN-div or R1 penalty:
  ``autograd.grad(netD(fake), fake)``): ``fake.detach()`` at the call leaves the penalty's
  ``fake`` out of the graph (a RuntimeError). The repair rebinds the input to a detached copy
  that requires grad, right before the forward: safe when the rebound value feeds no other
  backward.

Anything else gets no automatic fix: the finding stays for a human.
"""

from __future__ import annotations

import ast
import copy
from dataclasses import dataclass
from typing import List, Optional, Set

from ..findings import Fix, source_text, span
from ..semantic import torch_api as api
from ..semantic.model import forwarded_network


@dataclass(frozen=True)
class DetachRepair:
    fix: Optional[Fix]
    remedy: str  # the repair in words, for the message


def detach_repair(analysis, backward, loss, consumer, leaking) -> DetachRepair:
    """The repair of the leak from ``leaking`` through the trained model's ``consumer`` call
    into ``backward``'s ``loss``."""
    arg = leaking_argument(analysis, consumer, leaking)
    if arg is None:
        return DetachRepair(None, "detach the input that carries it")
    function = consumer.function
    written = source_text(arg)
    sources = analysis.values.sources(function, consumer.index, arg)
    others = _other_backwards_upstream(analysis, backward)
    if analysis.values.call(consumer) in others:
        return _second_forward(analysis, backward, loss, consumer, arg, others)
    if _input_gradient_taken(analysis, function, sources):
        if not isinstance(arg, ast.Name) or sources & others:
            return DetachRepair(
                None, f"give this step its own `{written}.detach().requires_grad_()`")
        name = arg.id
        return DetachRepair(
            Fix("insert-before", span(analysis.statement_of(consumer)),
                f"{name} = {name}.detach().requires_grad_()"),
            f"rebind `{name} = {name}.detach().requires_grad_()` first")
    return DetachRepair(Fix("method", span(arg), "detach"), f"pass `{_detached(arg)}`")


def leaking_argument(analysis, consumer, leaking) -> Optional[ast.expr]:
    """The argument of the trained model's call that carries the leak."""
    node = analysis.values.call(leaking)
    for arg in consumer.node.args:
        sources = analysis.values.sources(consumer.function, consumer.index, arg)
        if node in sources or any(node in analysis.values.upstream(source) for source in sources):
            return arg
    return None


def _detached(arg: ast.expr) -> str:
    written = source_text(arg)
    atomic = isinstance(arg, (ast.Name, ast.Attribute, ast.Call, ast.Subscript))
    return f"{written}.detach()" if atomic else f"({written}).detach()"


def _other_backwards_upstream(analysis, backward) -> Set[tuple]:
    """The dataflow nodes whose history reaches a backward pass other than ``backward``."""
    found: Set[tuple] = set()
    for site in analysis.sites():
        if site is backward:
            continue
        if site.method == "backward" and isinstance(site.node.func, ast.Attribute):
            found |= analysis.gradient_upstream(site.function, site.index, site.node.func.value)
        elif site.qualified in api.AUTOGRAD_BACKWARD and site.node.args:
            found |= analysis.gradient_upstream(site.function, site.index, site.node.args[0])
    return found


def _input_gradient_taken(analysis, function, sources: Set[tuple]) -> bool:
    """An ``autograd.grad(..., inputs)`` of the function differentiates with respect to the
    value the trained model's call takes."""
    for site in function.sites:
        if site.qualified not in api.AUTOGRAD_GRAD:
            continue
        inputs = site.node.args[1] if len(site.node.args) > 1 else next(
            (k.value for k in site.node.keywords if k.arg == "inputs"), None)
        if inputs is not None and analysis.values.sources(function, site.index, inputs) & sources:
            return True
    return False


def _header(statement: ast.stmt) -> List[ast.AST]:
    """The parts of a statement that run at its own index (a compound statement's body has
    indexes of its own)."""
    if isinstance(statement, (ast.For, ast.AsyncFor)):
        return [statement.target, statement.iter]
    if isinstance(statement, (ast.If, ast.While)):
        return [statement.test]
    if isinstance(statement, (ast.With, ast.AsyncWith)):
        return [item.context_expr for item in statement.items]
    if isinstance(statement, (ast.Try, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return []
    return [statement]


def _reads(statement: ast.stmt, name: str) -> bool:
    return any(isinstance(node, ast.Name) and node.id == name and isinstance(node.ctx, ast.Load)
               for part in _header(statement) for node in ast.walk(part))


def _statement_nodes(analysis, function, index: int) -> Set[tuple]:
    """The dataflow nodes a statement creates: its definitions and its calls."""
    statement = function.statements[index]
    nodes = {analysis.values.call(site) for site in function.sites if site.index == index}
    if isinstance(statement, (ast.Assign, ast.AugAssign, ast.AnnAssign)):
        targets = statement.targets if isinstance(statement, ast.Assign) else [statement.target]
        for target in targets:
            for node in ast.walk(target):
                if isinstance(node, ast.Name):
                    nodes.add(analysis.values.definition(function, index, node.id))
    return nodes


def _second_forward(analysis, backward, loss, consumer, arg, others) -> DetachRepair:
    """Rebind the shared output to a forward on the detached input, right before the first
    statement through which it reaches ``backward``."""
    function = consumer.function
    model_name = forwarded_network(consumer) or "the model"
    remedy = f"run `{model_name}` again on `{_detached(arg)}` for this loss"  # not the shared one
    statement = analysis.statement_of(consumer)
    if backward.function is not function or not (
            isinstance(statement, ast.Assign) and len(statement.targets) == 1
            and isinstance(statement.targets[0], ast.Name) and statement.value is consumer.node):
        return DetachRepair(None, remedy)
    name = statement.targets[0].id
    for loop in function.loops:
        earlier = range(loop.first_index, consumer.index)
        if loop.contains_index(consumer.index) and any(
                _reads(function.statements[k], name) for k in earlier):
            return DetachRepair(None, remedy)  # an earlier statement reads last iteration's value
    redefined = [k for k in analysis.values.definitions(function, name) if k > consumer.index]
    last = redefined[0] if redefined else len(function.statements) - 1
    leak_upstream = analysis.gradient_upstream(function, backward.index, loss)
    other_backwards = {site.index for site in function.sites
                       if site is not backward and site.method == "backward"}
    first_leak = None
    for index in range(consumer.index + 1, last + 1):
        if not _reads(function.statements[index], name):
            continue
        nodes = _statement_nodes(analysis, function, index)
        to_leak = index == backward.index or bool(nodes & leak_upstream)
        to_other = index in other_backwards or bool(nodes & others)
        if first_leak is None and to_leak:
            first_leak = index
        if first_leak is not None and to_other:
            return DetachRepair(None, remedy)  # the rebound name would cut another backward
    if first_leak is None:
        return DetachRepair(None, remedy)
    inputs = {node.id for node in ast.walk(consumer.node) if isinstance(node, ast.Name)}
    if any(consumer.index < k < first_leak for key in inputs
           for k in analysis.values.definitions(function, key)):
        return DetachRepair(None, remedy)  # the second forward would see other values
    call = copy.deepcopy(consumer.node)
    position = consumer.node.args.index(arg)
    call.args[position] = ast.Call(ast.Attribute(call.args[position], "detach", ast.Load()), [], [])
    safe = not analysis.may_have_dropout_or_batchnorm(consumer, forwarded_network(consumer)) and \
        not _stepped_between(analysis, consumer, first_leak)
    return DetachRepair(
        Fix("insert-before", span(function.statements[first_leak]),
            f"{name} = {ast.unparse(call)}", safe=safe),
        remedy)


def _stepped_between(analysis, consumer, index: int) -> bool:
    """An optimizer step that may update the consumer's model runs between its forward and
    ``index``: a second forward would see other parameters."""
    binding = analysis.network_binding(consumer)
    for site in consumer.function.sites:
        if consumer.index < site.index < index and analysis.is_optimizer_step(site):
            stepped = analysis.stepped_models(site)
            if stepped is None or stepped & binding:
                return True
    return False
