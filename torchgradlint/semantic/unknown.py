"""Why a model's mode stays unknown where TGL201/TGL202 would have asked (``check -v``).

The mode rules stay silent when a model may be in a mode the analysis could not follow; these
notes say which models, where, and the most likely reason, so that users can see what the
analysis could not see (and what would let it: a caller in the project, a visible constructor).
"""

from __future__ import annotations

import ast
from typing import List, Optional, Tuple

from .flow import UNKNOWN_TAG
from .structure import CallSite, FunctionInfo, binding_scope

LOADERS = {"torch.load", "torch.jit.load", "torch.hub.load", "torch.jit.script", "torch.compile"}


def unknown_mode_notes(analysis) -> List[Tuple[int, str]]:
    """(line, text) for each evaluation or training forward whose model may be in an unknown
    mode, once per model and function."""
    notes: List[Tuple[int, str]] = []
    seen = set()
    for site in analysis.forwards():
        if getattr(site.function, "framework_loop", False):
            continue
        mode = analysis.mode_of(site, site.network)
        if mode and all(value != UNKNOWN_TAG for value, _ in mode):
            continue
        key = (id(site.function), site.network)
        if key in seen:
            continue
        if analysis.evaluation_evidence(site, include_mode=False) is None and \
                not analysis.grad_is_off(site) and not analysis.reaches_training(site):
            continue  # neither rule would ask about this forward
        seen.add(key)
        where = "at module level" if site.function.is_module_scope else f"in {site.function.name}()"
        notes.append((site.line, f"`{site.network}` {where}: mode unknown, so TGL201/TGL202 stay "
                                 f"silent here -- {_why(analysis, site)}"))
    return notes


def _why(analysis, site: CallSite) -> str:
    function = site.function
    key = site.network
    root = key.split(".")[0]
    for other in function.sites:
        if other.method == "train" and other.receiver and key.startswith(other.receiver) and \
                (other.node.args or other.node.keywords) and other.line <= site.line:
            flag = other.node.args[0] if other.node.args else other.node.keywords[0].value
            if not isinstance(flag, ast.Constant):
                return f"`{other.receiver}.train({_text(flag)})` at line {other.line} sets it from a " \
                       "value the linter cannot read"
    if root == "self":
        cls = analysis.facts.enclosing_class(function)
        name = cls.name if cls is not None else "the class"
        if not function.callers and not analysis.flow.contributions(function):
            return f"no code in the project calls {name}.{function.name}() (an entry point for " \
                   "other code or a framework)"
        return f"`{key}` is set where the linter cannot see its mode (an argument of " \
               f"{name}'s constructor, or a value it cannot follow)"
    scope = binding_scope(function, root)
    if root in scope.params:
        if not scope.callers and not analysis.flow.contributions(scope):
            return f"a parameter of {scope.name}() that no code in the project passes (callers " \
                   "outside the project, or a framework)"
        return f"the callers of {scope.name}() pass `{root}` in a mode the linter cannot see"
    assigned = _assigned_value(scope, root)
    if isinstance(assigned, ast.Call):
        qualified = analysis.imports.resolve(assigned.func) or ""
        if qualified in LOADERS:
            return f"loaded by `{qualified}(...)`, which keeps the mode it was saved in"
        return f"returned by `{_text(assigned)}`, a call whose result the linter cannot follow"
    if assigned is not None:
        return f"bound to `{_text(assigned)}`, a value the linter cannot follow"
    if analysis.imports.is_imported(root):
        return f"`{root}` is imported from code the linter does not read"
    return "its mode differs between the paths that reach here (one of them not followed)"


def _assigned_value(scope: FunctionInfo, name: str) -> Optional[ast.AST]:
    for statement in scope.statements:
        if isinstance(statement, ast.Assign) and any(
                isinstance(target, ast.Name) and target.id == name for target in statement.targets):
            return statement.value
        if isinstance(statement, ast.AnnAssign) and isinstance(statement.target, ast.Name) and \
                statement.target.id == name and statement.value is not None:
            return statement.value
    return None


def _text(node: ast.AST, limit: int = 40) -> str:
    try:
        text = ast.unparse(node)
    except Exception:  # noqa: BLE001 -- a note must never break a run
        return "..."
    return text if len(text) <= limit else text[:limit - 3] + "..."
