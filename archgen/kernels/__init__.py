"""Triton kernels for inference and the module rewrite that uses them.

`bn_act` computes the end of a residual block, act(bn(x) [+ r | + bn2(r)]), in
one pass over memory; `fuse(model)` returns an eval-mode copy of a model whose
blocks end in it. Importing this package imports torch (not Triton, which is
loaded on the first kernel call); the CLI imports it only inside commands.
"""

from __future__ import annotations

# The names are bound after the submodules load, so `archgen.kernels.bn_act` is the function.
from archgen.kernels.bn_act import bn_act, bn_act_reference, bn_scale_shift, launch_config, uses_triton
from archgen.kernels.fuse import BNAct, ConvBNAct, fuse, register_fuse_rule

__all__ = ["bn_act", "bn_act_reference", "bn_scale_shift", "launch_config", "uses_triton", "fuse",
           "register_fuse_rule", "BNAct", "ConvBNAct"]
