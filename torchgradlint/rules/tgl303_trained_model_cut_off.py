"""TGL303: the model an optimizer step trains reaches the loss only through a cut.

The generator's loss computed from ``netD(fake.detach())`` (or ``fake.data``, or a fake made under
``no_grad``): the backward never reaches the generator, and its step trains nothing.
"""

from ..findings import Finding, RuleInfo, line_ref

RULE = RuleInfo(
    "TGL303", "trained-model-cut-off-from-loss",
    "the model an optimizer step trains reaches its loss only through `.detach()` / "
    "`.data` / `no_grad`",
    fix_safety="none",
)


def check(analysis):
    if not analysis.has_runtime_questions():
        return  # no forward or backward pass of the file's own to judge
    reported = set()
    for backward, step, stepped, loss in analysis.backward_passes():
        if not stepped:
            continue
        function, index = backward.function, backward.index
        if analysis.computed_without_graph(backward, loss) is not None:
            continue  # no graph at all: TGL102
        with_history = analysis.gradient_upstream(function, index, loss)
        trained = [site for site in analysis.forward_sites_in(with_history)
                   if analysis.network_binding(site) & stepped]
        if any(analysis.grad_may_be_on(site) for site in trained):
            continue
        cut = _no_grad_forward(analysis, trained)
        if cut is None:
            cut = _detach_on_the_way(analysis, with_history, stepped)
        if cut is None or cut in reported:
            continue
        reported.add(cut)
        line, col, what = cut
        yield Finding(
            RULE.code, line, col,
            f"{what} cuts `{step.receiver}`'s model off from its loss: that step trains "
            f"nothing; keep the graph here (the backward at {line_ref(backward.line)}, the step "
            f"at {line_ref(step.line)})")


def _no_grad_forward(analysis, trained):
    for site in trained:
        if analysis.grad_is_off(site):
            return site.line, site.col, f"`{site.network}(...)` under no_grad"
    return None


def _detach_on_the_way(analysis, with_history, stepped):
    """A ``.detach()`` / ``.item()`` call or ``.data`` attribute that the loss's history
    reaches and behind which a forward of a stepped model lies."""
    values = analysis.values
    for node in sorted(with_history, key=str):
        cut_inputs = values.cut_inputs(node)
        if not cut_inputs:
            continue
        behind = set(cut_inputs)  # what the cut removes the history of (not integer indices)
        for source in cut_inputs:
            behind |= values.upstream(source)
        if any(analysis.network_binding(site) & stepped for site in analysis.forward_sites_in(behind)):
            position = values.data_read_position(node)
            if position is not None:
                line, col = position
                return line, col, "`.data`"
            site = analysis.site_of(node)
            return site.line, site.col, f"`.{site.method or site.callee}()`"
    return None
