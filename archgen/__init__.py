"""archgen: compile declarative YAML specs of ResNet-family networks into PyTorch.

Public API: `load_spec`, `build`, `profile`, `plan`, `fuse` (Triton-fused
inference), `lesion` and `path_lengths` (the ensemble view), `SpecError`, and
timm's entry points `create_model`, `list_models` and `load_weights` (weights by
name). Torch is imported only when a function that needs it is called, so
`archgen --help` stays fast.
"""

from __future__ import annotations

from typing import Any

from archgen.errors import SpecError
from archgen.grammar.loader import Spec, load_spec

__all__ = ["SpecError", "Spec", "load_spec", "build", "profile", "plan", "fuse", "lesion", "path_lengths",
           "create_model", "list_models", "load_weights"]
__version__ = "0.1.0"


#: Public names served lazily: name -> (module, attribute). Importing them pulls in torch.
_LAZY = {
    "build": ("archgen.builder", "build"),
    "profile": ("archgen.complexity", "profile"),
    "plan": ("archgen.planner", "plan"),
    "fuse": ("archgen.kernels.fuse", "fuse"),
    "lesion": ("archgen.ensemble", "lesion"),
    "path_lengths": ("archgen.ensemble", "path_lengths"),
    "create_model": ("archgen.models", "create_model"),
    "list_models": ("archgen.models", "list_models"),
    "load_weights": ("archgen.weights", "load_weights"),
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'archgen' has no attribute {name!r}")
