"""Run programs and their fixed versions on real torch and compare the gradients that every
optimizer step receives.

``python tests/gradient_steps.py BEFORE AFTER [BEFORE AFTER ...]`` prints, as JSON on its last
line, one record per pair: the error each run ended with, the number of steps, the first step
whose gradients differ (``gradients``) and the first step that trains other parameters or
another optimizer (``training``), or None.

Each run starts from the same seeds and records, in a global optimizer step pre-hook (torch's
own ``register_optimizer_step_pre_hook``: no mock), which optimizer steps (numbered by first
appearance) and a copy of the gradient of each of its parameters. A step's gradients are what
it trains with: for TGL301, gradients that leaked into a model that the step does not update
are not among them, and a ``zero_grad`` discards them before that model's own step.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import random
import runpy
import sys
import weakref
from typing import List, Optional, Tuple

import torch
from torch.optim.optimizer import register_optimizer_step_pre_hook

Step = Tuple[int, List[Optional[torch.Tensor]]]


def record(path: str) -> Tuple[List[Step], Optional[str]]:
    steps: List[Step] = []
    numbers: "weakref.WeakKeyDictionary[torch.optim.Optimizer, int]" = weakref.WeakKeyDictionary()

    def before_step(optimizer, args, kwargs):
        number = numbers.setdefault(optimizer, len(numbers))
        grads = [None if p.grad is None else p.grad.detach().clone()
                 for group in optimizer.param_groups for p in group["params"]]
        steps.append((number, grads))

    random.seed(0)
    torch.manual_seed(0)
    torch.set_grad_enabled(True)
    handle = register_optimizer_step_pre_hook(before_step)
    saved_argv, saved_path = list(sys.argv), list(sys.path)
    sys.argv = [path]
    sys.path.insert(0, os.path.dirname(os.path.abspath(path)))
    error = None
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            runpy.run_path(path, run_name="__main__")
    except SystemExit as exc:
        if exc.code not in (None, 0):
            error = f"SystemExit: {exc.code}"
    except Exception as exc:  # the program's own failure is the result
        error = f"{type(exc).__name__}: {exc}"
    finally:
        handle.remove()
        sys.argv, sys.path[:] = saved_argv, saved_path
        torch.set_grad_enabled(True)
    return steps, error


def first_training_difference(before: List[Step], after: List[Step]) -> Optional[str]:
    """The first step at which the fixed run steps another optimizer, or gives gradients to
    other parameters (None for one, a tensor for the other)."""
    for number, ((opt_a, grads_a), (opt_b, grads_b)) in enumerate(zip(before, after)):
        if opt_a != opt_b or len(grads_a) != len(grads_b):
            return f"step {number}: optimizer {opt_a} before, {opt_b} after"
        for index, (a, b) in enumerate(zip(grads_a, grads_b)):
            if (a is None) != (b is None):
                return f"step {number}: parameter {index} of optimizer {opt_a} " \
                       f"{'has no gradient' if b is None else 'gets a gradient'} after the fix"
    if len(before) != len(after):
        return f"{len(before)} steps before the fix, {len(after)} after"
    return None


def first_gradient_difference(before: List[Step], after: List[Step]) -> Optional[str]:
    training = first_training_difference(before, after)
    if training is not None:
        return training
    for number, ((opt, grads_a), (_, grads_b)) in enumerate(zip(before, after)):
        for index, (a, b) in enumerate(zip(grads_a, grads_b)):
            if a is not None and not torch.allclose(a, b, rtol=1e-5, atol=1e-7):
                largest = (a - b).abs().max().item()
                return f"step {number}: parameter {index} of optimizer {opt} differs by {largest:g}"
    return None


def compare(before_path: str, after_path: str) -> dict:
    before, before_error = record(before_path)
    after, after_error = record(after_path)
    return {
        "before_error": before_error,
        "after_error": after_error,
        "steps": [len(before), len(after)],
        "training": first_training_difference(before, after),
        "gradients": first_gradient_difference(before, after),
    }


def main(paths: List[str]) -> None:
    torch.set_num_threads(1)  # the same reduction order in both runs
    results = {}
    for before_path, after_path in zip(paths[::2], paths[1::2]):
        results[after_path] = compare(before_path, after_path)
    sys.stdout.write("\n" + json.dumps(results) + "\n")


if __name__ == "__main__":
    main(sys.argv[1:])
