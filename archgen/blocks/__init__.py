"""Block families, one file each; importing this package registers them all."""

from archgen.blocks import conv, darknet, densenet, preact, resnet  # noqa: F401  (registration side effect)
from archgen.blocks.registry import BlockArgs, BlockFamily, block_names, get_block, register_block

__all__ = ["BlockArgs", "BlockFamily", "block_names", "get_block", "register_block"]
