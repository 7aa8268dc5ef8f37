"""TGL101: an evaluation or inference forward pass runs with autograd enabled.

A forward with autograd on records a graph. When nothing computed from its output can reach a
backward pass (the def-use graph shows every use: printed, compared, ``.item()``-ed, detached,
saved as an image), the graph is built for nothing, whatever the code is called. Where the
output leaves for code the analysis cannot see, it falls back to what the code says of itself:
the model is in eval mode, the function is called ``evaluate``, the loop walks ``val_loader``,
or evaluation code calls it. Code that asks for input gradients (adversarial examples,
saliency, gradient penalties) uses its graphs and stays silent.
"""

from ..findings import Finding, Fix, RuleInfo, span

RULE = RuleInfo(
    "TGL101", "forward-with-autograd-in-evaluation",
    "an evaluation or inference forward pass runs with autograd enabled",
    fix_safety="unsafe",
    fix_summary="wrap in `torch.no_grad()`",
)


def check(analysis):
    if not analysis.has_runtime_questions():
        return  # no forward or backward pass of the file's own to judge
    for site in analysis.forwards():
        if not analysis.grad_may_be_on(site) or analysis.is_frozen(site):
            continue
        fix = no_grad_fix(analysis, site)
        evidence = analysis.unused_graph_evidence(site)
        if evidence is not None:
            yield Finding(
                RULE.code, site.line, site.col,
                f"`{site.network}` runs with autograd on but no backward pass uses its output: "
                f"run it under `torch.no_grad()` ({evidence})", fix)
            continue
        if analysis.is_training_context(site):
            # A step shared with training through a flag: no_grad around it would stop
            # training too (``torch.set_grad_enabled(train)`` is the repair, not a mechanical one).
            evidence, fix = analysis.evaluated_through_a_flag(site), None
            if evidence is None:
                continue
        if evidence is None:
            evidence = analysis.evaluation_evidence(site)
            if evidence is None or not analysis.evaluation_reaches_with_grad(site):
                continue
        remedy = "run it under `torch.no_grad()`" if fix is not None else \
            "switch autograd with the flag (`torch.set_grad_enabled(training)`)"
        yield Finding(
            RULE.code, site.line, site.col,
            f"`{site.network}` evaluates with autograd on: {remedy} (evaluation: {evidence})", fix)


def no_grad_fix(analysis, site):
    """Wrap the evaluation loop (the outermost loop around the forward that does not train) in
    ``with torch.no_grad():``; outside loops, wrap the statement. Unsafe: results computed there
    can no longer be differentiated."""
    context = f"{analysis.torch_name()}.no_grad()"
    return Fix("wrap", span(analysis.evaluation_start(site)), context, safe=False, imports=("torch",))
