"""Layer kinds and merge kinds, one unit each: a frozen dataclass record that says its cost (`cost`, into a
Tally), its torch module (`module`, the only place torch is imported), what fuse and the kernel units may do
with it (`fusable`, a role of base.FUSE_ROLES or MERGE_ROLES), the kernel kind it runs as (`unit`, a kind of
archgen.bench.unit_kinds, which the latency model times and features) and what the rest of archgen asks of a
layer (`weight_layers`, `scales_output`). Families write blocks as these records (archgen.layer_kinds.block.BlockLayers);
counting, building and fusing loop over the records and ask each its kind, with no branch per kind, so a new
kind is one new file here, registered by name with `@layer_kind` or `@merge_kind` (which check it).

A kind whose module torch lacks takes it from archgen.modules (zero padding, frozen batch norm, and
`Rescale` for a gate that multiplies its input), which imports no kind. Importing this package registers
every kind in it.
"""

import importlib
import pkgutil

from archgen.layer_kinds.base import LAYER_KINDS, MERGE_KINDS

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")


def layer_kinds() -> dict[str, type]:
    """Every registered layer kind, by name."""
    return dict(LAYER_KINDS)


def merge_kinds() -> dict[str, type]:
    """Every registered merge kind, by name."""
    return dict(MERGE_KINDS)
