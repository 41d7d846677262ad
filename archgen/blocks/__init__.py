"""Block families, one file each; importing this package registers them all.

Every module in this package is imported, so a new family is one new file here (plus its specs and tests).
The look-ups by name live here, after the imports, so the registry module never imports its package.
"""

import importlib
import pkgutil

from archgen.blocks.registry import REGISTRY, Family, Placement, PlannedBlock, register_block
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


__all__ = ["Family", "Placement", "PlannedBlock", "block_names", "family_class", "register_block", "spec_family"]
