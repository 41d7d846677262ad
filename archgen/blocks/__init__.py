"""Block families, one file each; importing this package registers them all.

Every module in this package is imported, so a new family is one new file here (plus its specs and tests).
"""

import importlib
import pkgutil

from archgen.blocks.registry import (Family, Placement, PlannedBlock, block_names, family_class, register_block,
                                     spec_family)

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["Family", "Placement", "PlannedBlock", "block_names", "family_class", "register_block", "spec_family"]
