"""TGL102: a backward pass or autograd.grad on a loss computed with autograd off."""

import ast

from ..findings import Finding, RuleInfo, line_ref, source_text

RULE = RuleInfo(
    "TGL102", "backward-of-no-grad-loss",
    "`.backward()` / `autograd.grad` on a loss computed under `no_grad` / "
    "`inference_mode`",
    fix_safety="none",
)


def check(analysis):
    if not analysis.has_runtime_questions():
        return  # no forward or backward pass of the file's own to judge
    for site in analysis.sites():
        if site.method == "backward" and site.receiver is not None or (
                site.method == "backward" and isinstance(site.node.func, ast.Attribute)):
            loss = site.node.func.value
        elif site.qualified == "torch.autograd.grad" and site.node.args:
            loss = site.node.args[0]
        else:
            continue
        line = analysis.computed_without_graph(site, loss)
        if line is not None:
            yield Finding(
                RULE.code, site.line, site.col,
                f"backward of `{source_text(loss)}`, computed with autograd off: it fails or "
                f"trains nothing (no_grad at {line_ref(line)})")
