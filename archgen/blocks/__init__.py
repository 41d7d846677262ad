"""Block families, one file each, with the stage rules that write their stages; importing this package registers
them all.

Every module in this package is imported, so a new family or rule is one new file here, or a few lines in its
family's (plus its specs and tests).
The look-ups by name live here, after the imports, so the registry module never imports its package.
"""

import importlib
import pkgutil

from archgen.blocks.registry import (REGISTRY, STAGE_RULES, Family, Placement, PlannedBlock, StageRule,
                                     register_block, register_stage_rule)
from archgen.errors import did_you_mean

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")


def family_class(name: str) -> type[Family]:
    """Any registered family, internal ones included."""
    if name not in REGISTRY:
        raise KeyError(f"unknown block type '{name}'")
    return REGISTRY[name]


def spec_family(name: str) -> type[Family]:
    """A family a spec may name as `block.type`; KeyError with a suggestion otherwise."""
    family = REGISTRY.get(name)
    if family is None or family.internal:
        names = block_names()
        raise KeyError(f"unknown block type '{name}'.{did_you_mean(name, names)} Registered: {', '.join(names)}")
    return family


def block_names() -> list[str]:
    """The block types a spec may name."""
    return sorted(name for name, family in REGISTRY.items() if not family.internal)


def stage_rule_class(name: str) -> type[StageRule]:
    """The rule `stages: {name: ...}` names; KeyError with a suggestion otherwise."""
    rule = STAGE_RULES.get(name)
    if rule is None:
        names = stage_rule_names()
        raise KeyError(f"unknown stage rule '{name}'.{did_you_mean(name, names)} Registered rules: "
                       f"{', '.join(names)}")
    return rule


def stage_rule_names() -> list[str]:
    """The stage rules a spec may name."""
    return sorted(STAGE_RULES)


__all__ = ["Family", "Placement", "PlannedBlock", "StageRule", "block_names", "family_class", "register_block",
           "register_stage_rule", "spec_family", "stage_rule_class", "stage_rule_names"]
