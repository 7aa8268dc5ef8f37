"""The rule catalogue, discovered from the rule modules.

Each module ``tglNNN_<name>.py`` of this package declares its own metadata as ``RULE`` (a
:class:`~torchgradlint.findings.RuleInfo`: code, name, summary, fix safety and the shapes in
which a safe rule's fix is unsafe) next to its ``check(analysis)``, which yields Findings from the
file's semantic model. Everything that shows a rule -- ``torchgradlint rules``, the JSON and
SARIF output, the fixer, the docs' tables (checked by the tests) -- reads this catalogue.
"""

from __future__ import annotations

import importlib
import pkgutil
import re
from typing import Dict, List

from ..findings import Finding, RuleInfo

_MODULE_NAME = re.compile(r"tgl\d{3}_\w+")


def _rule_modules():
    found = []
    for entry in pkgutil.iter_modules(__path__):
        if _MODULE_NAME.fullmatch(entry.name):
            found.append(importlib.import_module(f"{__name__}.{entry.name}"))
    return sorted(found, key=lambda module: module.RULE.code)


_MODULES = _rule_modules()
RULES: List[RuleInfo] = [module.RULE for module in _MODULES]
RULES_BY_CODE: Dict[str, RuleInfo] = {rule.code: rule for rule in RULES}


def checkers():
    """``(RULE, check)`` of every rule module, in code order."""
    return [(module.RULE, module.check) for module in _MODULES]


def is_safe_fix(finding: Finding) -> bool:
    """The finding's fix is safe: the fix says so and its rule declares safe fixes (``RULE`` in
    the rule's module; a rule declared unsafe cannot emit a safe fix by mistake)."""
    rule = RULES_BY_CODE.get(finding.code)
    return finding.fix is not None and finding.fix.safe and \
        rule is not None and rule.fix_safety == "safe"
